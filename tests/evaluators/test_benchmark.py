from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from evaluators import (
    BackendOptions,
    BackendUnavailableError,
    BenchmarkError,
    CompileError,
    MeasureJob,
    Measurement,
    TimingSettings,
    get_backend,
    measure_interleaved,
    measure_many,
    measure_onnx,
)
from search_spaces import UnknownNameError
from tests.evaluators.models import SAMPLE_SHAPE

pytestmark = pytest.mark.slow

FAST = TimingSettings(warmup_runs=3, min_runs=20, min_seconds=0.05)


@pytest.mark.parametrize(("backend", "batch"), [
    ("onnxruntime", 1), ("onnxruntime", 4), ("openvino", 1), ("openvino", 4), ("torch-eager", 2),
])
def test_measurement_is_sane(backend: str, batch: int, tiny_onnx: Path) -> None:
    measurement = measure_onnx(tiny_onnx, backend=backend, options=BackendOptions(threads=1),
                               input_shape=(batch, *SAMPLE_SHAPE), timing=FAST)
    assert (measurement.backend, measurement.device, measurement.batch_size) == (
        backend, "cpu", batch)
    assert 0 < measurement.min_ms <= measurement.median_ms <= measurement.p90_ms
    assert measurement.p90_ms <= measurement.max_ms
    assert measurement.runs >= FAST.min_runs and measurement.warmup_runs == FAST.warmup_runs
    assert measurement.compile_seconds > 0
    assert measurement.ci_low_ms <= measurement.median_ms <= measurement.ci_high_ms
    assert 0 < measurement.floor_ms < measurement.median_ms
    # a 0.007 ms model can reach max_runs (100,000) before its rounds agree within rel_ci
    assert measurement.rounds >= 1 and measurement.stop_reason in ("precision", "time_cap", "max_runs")
    assert measurement.runtime == get_backend(backend).sdk_module
    assert measurement.runtime_version[0].isdigit()
    assert measurement.device_name and measurement.device_name != "cpu"
    metrics = measurement.as_metrics()
    assert set(metrics) == {"latency_median_ms", "latency_p90_ms", "latency_mean_ms",
                            "latency_min_ms", "latency_std_ms", "latency_ci_low_ms",
                            "latency_ci_high_ms", "harness_floor_ms", "runs", "rounds",
                            "compile_s"}
    assert metrics["latency_median_ms"] == measurement.median_ms
    assert metrics["latency_ci_high_ms"] == measurement.ci_high_ms


def test_interleaved_jobs_each_get_a_result_and_failures_stay_apart(tiny_onnx: Path) -> None:
    shape = (1, *SAMPLE_SHAPE)
    jobs = [
        MeasureJob(backend="onnxruntime", options=BackendOptions(), input_shape=shape),
        MeasureJob(backend="tvm", options=BackendOptions(), input_shape=shape),
        MeasureJob(backend="openvino", options=BackendOptions(), input_shape=(1, 3, 8, 8)),
        MeasureJob(backend="onnxruntime", options=BackendOptions(precision="int3"),
                   input_shape=shape),
        MeasureJob(backend="openvino", options=BackendOptions(), input_shape=(2, *SAMPLE_SHAPE)),
    ]
    timing = TimingSettings(warmup_runs=3, min_runs=20, min_seconds=0.05, round_seconds=0.01)
    results = measure_interleaved(tiny_onnx, jobs=jobs, timing=timing)
    assert len(results) == len(jobs)
    ort, unknown, wrong_shape, bad_precision, openvino = results
    assert isinstance(ort, Measurement) and isinstance(openvino, Measurement)
    assert (ort.backend, openvino.backend, openvino.batch_size) == ("onnxruntime", "openvino", 2)
    assert ort.rounds >= 2 and openvino.rounds >= 2  # alternating rounds, not one burst
    assert isinstance(unknown, UnknownNameError)
    assert isinstance(wrong_shape, CompileError) and str(wrong_shape).startswith("openvino: ")
    assert isinstance(bad_precision, BackendUnavailableError) and "int3" in str(bad_precision)


def test_many_models_are_timed_round_robin(tiny_onnx: Path, corrupt_onnx: Path) -> None:
    """Every model and job alternate rounds; a broken model is its own error."""
    def jobs(batch: int) -> list[MeasureJob]:
        return [MeasureJob(backend=name, options=BackendOptions(),
                           input_shape=(batch, *SAMPLE_SHAPE)) for name in ("onnxruntime",
                                                                            "openvino")]
    sweeps: list[int] = []
    timing = TimingSettings(warmup_runs=3, min_runs=20, min_seconds=0.06, round_seconds=0.01)
    results = measure_many([(tiny_onnx, jobs(1)), (corrupt_onnx, jobs(1)), (tiny_onnx, jobs(3))],
                           timing=timing, on_progress=lambda: sweeps.append(1))
    assert [len(entries) for entries in results] == [2, 2, 2]
    assert all(isinstance(error, CompileError) for error in results[1])
    measured = [m for m in (*results[0], *results[2]) if isinstance(m, Measurement)]
    assert len(measured) == 4 and [m.batch_size for m in measured] == [1, 1, 3, 3]
    assert all(m.rounds >= 6 for m in measured)  # min_seconds spread over several rounds
    assert len(sweeps) >= 3 + max(m.rounds for m in measured)  # 3 compiles, then sweeps


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_corrupt_onnx_is_a_compile_error(backend: str, corrupt_onnx: Path) -> None:
    with pytest.raises(CompileError, match=f"^{backend}: "):
        measure_onnx(corrupt_onnx, backend=backend, options=BackendOptions(),
                     input_shape=(1, *SAMPLE_SHAPE), timing=FAST)


def test_unknown_backend(tiny_onnx: Path) -> None:
    with pytest.raises(UnknownNameError, match="onnxruntime, openvino"):
        measure_onnx(tiny_onnx, backend="tvm", options=BackendOptions(),
                     input_shape=(1, *SAMPLE_SHAPE), timing=FAST)


def test_missing_device_is_unavailable(tiny_onnx: Path) -> None:
    options = BackendOptions(device="npu")
    if get_backend("openvino").availability(options) is None:
        pytest.skip("this machine has an NPU")
    with pytest.raises(BackendUnavailableError, match="^openvino is unavailable .*NPU"):
        measure_onnx(tiny_onnx, backend="openvino", options=options,
                     input_shape=(1, *SAMPLE_SHAPE), timing=FAST)


def test_non_finite_output_is_a_benchmark_error(tmp_path: Path) -> None:
    """log() of standard-normal inputs is NaN for about half of them."""
    node = helper.make_node("Log", ["input"], ["logits"])
    graph = helper.make_graph(
        [node], "log", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 8])],
    )
    path = tmp_path / "log.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(BenchmarkError, match="non-finite"):
        measure_onnx(path, backend="onnxruntime", options=BackendOptions(), input_shape=(2, 8),
                     timing=FAST)
