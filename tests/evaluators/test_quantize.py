"""INT8 as a target attribute: calibration, quantized graphs, accuracy through the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators import (
    BackendOptions,
    CompileError,
    SettingsError,
    TimingSettings,
    TrainingSettings,
    export_onnx,
    get_backend,
    load_dataset,
    measure_onnx,
    train_and_evaluate,
)
from evaluators.accuracy import EvaluationSet, evaluate_accuracy
from evaluators.data import Dataset
from evaluators.quantize import (
    calibration_batches,
    calibration_samples,
    qdq_node_count,
    quantize_openvino,
    quantize_qdq,
    with_calibration,
)
from search_spaces import InputSpec
from tests.evaluators.models import SAMPLE_SHAPE, tiny_conv_net, torch_logits

BATCH = 8
SHAPE = (BATCH, *SAMPLE_SHAPE)
#: How many accuracy points int8 may lose against the fp32 model on the same runtime.
TOLERANCE = 0.04


@dataclass(frozen=True)
class Trained:
    dataset: Dataset
    onnx_path: Path
    torch_accuracy: float
    calibration: np.ndarray


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The tiny conv net trained briefly on digits, exported, with a calibration set."""
    dataset = load_dataset("digits", seed=0)
    model = tiny_conv_net()
    result = train_and_evaluate(model, dataset, TrainingSettings(epochs=4, batch_size=16,
                                                                 learning_rate=1e-2))
    path = export_onnx(model, example_input=torch.zeros(1, *SAMPLE_SHAPE),
                       path=tmp_path_factory.mktemp("int8") / "digits.onnx", candidate="digits")
    return Trained(dataset=dataset, onnx_path=path, torch_accuracy=result.accuracy,
                   calibration=calibration_samples(dataset, count=128, seed=0))


def _accuracy(backend: str, trained: Trained, precision: str) -> float:
    options = BackendOptions(precision=precision, calibration=trained.calibration)
    compiled = get_backend(backend).compile(trained.onnx_path, options=options, input_shape=SHAPE)
    try:
        return evaluate_accuracy(compiled, trained.dataset.test_x, trained.dataset.test_y,
                                 batch_size=BATCH)
    finally:
        compiled.close()


# --- fast: data, arguments, refusals ----------------------------------------------------

def test_calibration_samples_come_from_the_training_split_by_seed() -> None:
    rng = np.random.default_rng(0)
    dataset = Dataset(
        name="random", train_x=rng.random((300, *SAMPLE_SHAPE), dtype=np.float32),
        train_y=rng.integers(0, 10, 300), test_x=rng.random((20, *SAMPLE_SHAPE), dtype=np.float32),
        test_y=rng.integers(0, 10, 20), input_spec=InputSpec(shape=SAMPLE_SHAPE, num_classes=10))
    first = calibration_samples(dataset, count=50, seed=3)
    assert first.shape == (50, *SAMPLE_SHAPE) and first.dtype == np.float32
    np.testing.assert_array_equal(first, calibration_samples(dataset, count=50, seed=3))
    assert not np.array_equal(first, calibration_samples(dataset, count=50, seed=4))
    train = {row.tobytes() for row in dataset.train_x}
    assert all(row.tobytes() in train for row in first)
    assert len(calibration_samples(dataset, count=10**6, seed=0)) == len(dataset.train_x)
    with pytest.raises(SettingsError, match="count"):
        calibration_samples(dataset, count=0, seed=0)


def test_with_calibration_adds_samples_only_for_int8() -> None:
    rng = np.random.default_rng(0)
    dataset = Dataset(
        name="random", train_x=rng.random((30, *SAMPLE_SHAPE), dtype=np.float32),
        train_y=rng.integers(0, 10, 30), test_x=rng.random((5, *SAMPLE_SHAPE), dtype=np.float32),
        test_y=rng.integers(0, 10, 5), input_spec=InputSpec(shape=SAMPLE_SHAPE, num_classes=10))
    fp32 = BackendOptions(threads=2)
    assert with_calibration(fp32, dataset, seed=0) is fp32
    int8 = with_calibration(BackendOptions(precision="int8", threads=2), dataset, seed=0, count=8)
    assert int8.threads == 2 and int8.calibration is not None and int8.calibration.shape == (
        8, *SAMPLE_SHAPE)


def test_calibration_batches_are_whole_and_checked() -> None:
    data = np.zeros((10, *SAMPLE_SHAPE), np.float32)
    batches = calibration_batches(data, batch_size=4, sample_shape=SAMPLE_SHAPE)
    assert [b.shape for b in batches] == [(4, *SAMPLE_SHAPE)] * 2
    with pytest.raises(CompileError, match="int8 needs a calibration set"):
        calibration_batches(None, batch_size=1)
    with pytest.raises(CompileError, match="fewer than one batch"):
        calibration_batches(data, batch_size=11)
    with pytest.raises(CompileError, match=r"shape \(1, 8, 8\).*\(3, 8, 8\)"):
        calibration_batches(data, batch_size=1, sample_shape=(3, 8, 8))


@pytest.mark.parametrize("calibration", [np.zeros((4, 8), np.float64), np.zeros(4, np.float32),
                                         [[0.0]]])
def test_backend_options_check_the_calibration_set(calibration: object) -> None:
    with pytest.raises(SettingsError, match=r"BackendOptions\.calibration"):
        BackendOptions(precision="int8", calibration=calibration)  # type: ignore[arg-type]


def test_backend_options_compare_without_the_calibration_set() -> None:
    calibration = np.zeros((2, *SAMPLE_SHAPE), np.float32)
    assert BackendOptions(calibration=calibration) == BackendOptions()
    assert "calibration" not in repr(BackendOptions(calibration=calibration))


@pytest.mark.parametrize(("backend", "options", "words"), [
    ("onnxruntime", BackendOptions(device="cuda", precision="int8"), ["int8", "'tensorrt'"]),
    ("onnxruntime", BackendOptions(precision="int4"), ["int4", "fp32, fp16, int8"]),
    ("openvino", BackendOptions(precision="int4"), ["int4", "int8"]),
    ("tensorrt", BackendOptions(device="cpu", precision="int8"), ["'cpu'", "cuda"]),
])
def test_unsupported_precision_combinations_are_refused_with_the_reason(
        backend: str, options: BackendOptions, words: list[str]) -> None:
    reason = get_backend(backend).availability(options)
    assert reason and all(word in reason for word in words), reason


@pytest.mark.parametrize("device", ["gpu", "npu"])
def test_openvino_accelerators_absent_here_say_so(device: str) -> None:
    reason = get_backend("openvino").availability(BackendOptions(device=device, precision="int8"))
    if reason is None:
        pytest.skip(f"this machine has an OpenVINO {device.upper()}")
    assert f"no {device.upper()} device" in reason and "available: CPU" in reason


def test_int8_without_calibration_is_a_compile_error(tiny_onnx: Path) -> None:
    for backend in ("onnxruntime", "openvino"):
        with pytest.raises(CompileError, match=f"^{backend}: int8 needs a calibration set"):
            get_backend(backend).compile(tiny_onnx, options=BackendOptions(precision="int8"),
                                         input_shape=SHAPE)


def test_evaluation_set_checks_its_arrays() -> None:
    with pytest.raises(SettingsError, match="EvaluationSet"):
        EvaluationSet(x=np.zeros((3, 2), np.float32), y=np.zeros(2, np.int64))
    with pytest.raises(SettingsError, match="integer labels"):
        EvaluationSet(x=np.zeros((3, 2), np.float32), y=np.zeros(3, np.float32))


def test_evaluate_accuracy_pads_the_last_batch(tiny_model: torch.nn.Module,
                                               tiny_onnx: Path) -> None:
    x = np.random.default_rng(0).standard_normal((11, *SAMPLE_SHAPE), dtype=np.float32)
    predicted = torch_logits(tiny_model, x).argmax(axis=1)
    y = predicted.copy()
    y[:3] = (y[:3] + 1) % 10  # three wrong labels
    compiled = get_backend("openvino").compile(tiny_onnx, options=BackendOptions(),
                                               input_shape=(4, *SAMPLE_SHAPE))
    assert evaluate_accuracy(compiled, x, y, batch_size=4) == pytest.approx(8 / 11)


# --- slow: real quantization on a trained model -----------------------------------------

@pytest.mark.slow
def test_onnxruntime_int8_is_a_qdq_model_close_to_fp32(trained: Trained, tmp_path: Path) -> None:
    batches = calibration_batches(trained.calibration, batch_size=BATCH)
    path = quantize_qdq(trained.onnx_path, tmp_path / "int8.onnx", batches=batches)
    assert qdq_node_count(path) >= 4 and qdq_node_count(trained.onnx_path) == 0
    import onnx
    import onnxruntime

    session_options = onnxruntime.SessionOptions()
    session_options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    onnxruntime.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])
    executed = {node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}
    assert "QLinearConv" in executed and "Conv" not in executed, executed  # all convs int8
    fp32 = _accuracy("onnxruntime", trained, "fp32")
    int8 = _accuracy("onnxruntime", trained, "int8")
    assert fp32 == pytest.approx(trained.torch_accuracy, abs=1e-3)
    assert fp32 > 0.5 and abs(int8 - fp32) <= TOLERANCE, (fp32, int8)


@pytest.mark.slow
def test_openvino_int8_has_fake_quantize_and_runs_int8_close_to_fp32(trained: Trained) -> None:
    import openvino

    model = openvino.Core().read_model(str(trained.onnx_path))
    model.reshape(list(SHAPE))
    quantized = quantize_openvino(model, batches=calibration_batches(trained.calibration,
                                                                     batch_size=BATCH))
    assert sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ops()) >= 2
    runtime = openvino.Core().compile_model(quantized, "CPU").get_runtime_model()
    precisions = {op.get_rt_info()["runtimePrecision"].astype(str) for op in runtime.get_ops()
                  if "runtimePrecision" in op.get_rt_info()}
    assert {p.lower() for p in precisions} & {"i8", "u8"}, precisions  # int8 layers run
    fp32 = _accuracy("openvino", trained, "fp32")
    int8 = _accuracy("openvino", trained, "int8")
    assert fp32 > 0.5 and abs(int8 - fp32) <= TOLERANCE, (fp32, int8)


@pytest.mark.slow
def test_measure_onnx_reports_accuracy_at_the_target(trained: Trained) -> None:
    options = BackendOptions(precision="int8", calibration=trained.calibration)
    evaluation = EvaluationSet.from_dataset(trained.dataset)
    measurement = measure_onnx(trained.onnx_path, backend="onnxruntime", options=options,
                               input_shape=SHAPE, evaluation=evaluation,
                               timing=TimingSettings(warmup_runs=1, min_runs=3, min_seconds=0))
    assert measurement.accuracy is not None
    assert abs(measurement.accuracy - trained.torch_accuracy) <= TOLERANCE
    assert measurement.as_metrics()["accuracy"] == measurement.accuracy
