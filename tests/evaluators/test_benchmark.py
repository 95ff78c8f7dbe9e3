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
    TimingSettings,
    get_backend,
    measure_onnx,
)
from search_spaces import UnknownNameError
from tests.evaluators.models import SAMPLE_SHAPE

pytestmark = pytest.mark.slow

FAST = TimingSettings(warmup_runs=3, min_runs=20, min_seconds=0.05)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("batch", [1, 4])
def test_measurement_is_sane(backend: str, batch: int, tiny_onnx: Path) -> None:
    measurement = measure_onnx(tiny_onnx, backend=backend, options=BackendOptions(threads=1),
                               input_shape=(batch, *SAMPLE_SHAPE), timing=FAST)
    assert (measurement.backend, measurement.device, measurement.batch_size) == (
        backend, "cpu", batch)
    assert 0 < measurement.min_ms <= measurement.median_ms <= measurement.p90_ms
    assert measurement.p90_ms <= measurement.max_ms
    assert measurement.runs >= FAST.min_runs and measurement.warmup_runs == FAST.warmup_runs
    assert measurement.compile_seconds > 0
    metrics = measurement.as_metrics()
    assert set(metrics) == {"latency_median_ms", "latency_p90_ms", "latency_mean_ms",
                            "latency_min_ms", "latency_std_ms", "runs", "compile_s"}
    assert metrics["latency_median_ms"] == measurement.median_ms


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
