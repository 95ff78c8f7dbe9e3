"""TensorRT (native) and ONNX Runtime's CUDA / TensorRT providers.

The ``gpu`` tests run unchanged on a machine with an NVIDIA GPU and the GPU extra
(`pip install 'paretonas[gpu]'`); elsewhere they skip with the reason availability
gives. The other tests check, on any machine, that the reasons say what is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluators import BackendOptions, CompileError, TimingSettings, get_backend, measure_onnx
from evaluators.backends.tensorrt_backend import TensorRtModel, cuda_device_index
from evaluators.quantize import qdq_node_count, quantize_qdq
from tests.evaluators.models import SAMPLE_SHAPE

BATCH = 4
SHAPE = (BATCH, *SAMPLE_SHAPE)


def _inputs(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(SHAPE, dtype=np.float32)


def _calibration() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((64, *SAMPLE_SHAPE), dtype=np.float32)


def _ort_cpu(onnx_path: Path, inputs: np.ndarray) -> np.ndarray:
    compiled = get_backend("onnxruntime").compile(onnx_path, options=BackendOptions(),
                                                  input_shape=inputs.shape)
    return compiled.run(inputs)


def _require(backend: str, options: BackendOptions) -> None:
    reason = get_backend(backend).availability(options)
    if reason:
        pytest.skip(f"{backend} on {options.device} unavailable: {reason}")


@pytest.mark.parametrize(("device", "index"), [("cuda", 0), ("cuda:3", 3), ("cpu", None),
                                               ("cuda:", None), ("cuda:x", None)])
def test_cuda_device_names(device: str, index: int | None) -> None:
    assert cuda_device_index(device) == index


def test_tensorrt_refuses_non_cuda_devices_and_unknown_precisions() -> None:
    backend = get_backend("tensorrt")
    reason = backend.availability(BackendOptions(device="cpu"))
    assert reason and "'cpu'" in reason and "cuda" in reason
    reason = backend.availability(BackendOptions(device="cuda", precision="bf16"))
    assert reason and "bf16" in reason and "fp32, fp16, int8" in reason


def test_tensorrt_availability_names_what_is_missing() -> None:
    reason = get_backend("tensorrt").availability(BackendOptions(device="cuda"))
    if reason is None:
        pytest.skip("TensorRT and a CUDA GPU are available here")
    assert any(cause in reason for cause in ("tensorrt is not installed",
                                             "cuda-python is not installed", "CUDA"))
    assert "paretonas[gpu]" in reason or "GPU" in reason


def test_compile_without_tensorrt_is_a_compile_error(tiny_onnx: Path) -> None:
    options = BackendOptions(device="cuda")
    reason = get_backend("tensorrt").availability(options)
    if reason is None:
        pytest.skip("TensorRT and a CUDA GPU are available here")
    with pytest.raises(CompileError, match="^tensorrt"):
        get_backend("tensorrt").compile(tiny_onnx, options=options, input_shape=SHAPE)


@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_onnxruntime_gpu_providers_say_what_is_missing(device: str) -> None:
    reason = get_backend("onnxruntime").availability(BackendOptions(device=device))
    if reason is None:
        pytest.skip(f"onnxruntime's {device} provider runs here")
    provider = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}[device]
    assert (provider in reason and "onnxruntime-gpu" in reason) or "GPU" in reason \
        or "tensorrt" in reason


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_onnxruntime_cuda_points_reduced_precision_to_tensorrt(precision: str) -> None:
    reason = get_backend("onnxruntime").availability(
        BackendOptions(device="cuda", precision=precision))
    assert reason and precision in reason and "'tensorrt'" in reason


def test_onnxruntime_cpu_refuses_fp16() -> None:
    reason = get_backend("onnxruntime").availability(BackendOptions(precision="fp16"))
    assert reason and "fp16" in reason and "fp32, int8" in reason


@pytest.mark.slow
def test_symmetric_qdq_model_is_what_tensorrt_needs(tiny_onnx: Path, tmp_path: Path) -> None:
    """TensorRT's explicit quantization needs signed, zero-point-0 activations."""
    import onnx
    from onnx import numpy_helper

    path = quantize_qdq(tiny_onnx, tmp_path / "int8.onnx",
                        batches=list(_calibration().reshape(16, *SHAPE)),
                        symmetric_activations=True)
    assert qdq_node_count(path) > 0
    model = onnx.load(str(path))
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    zero_points = [constants[node.input[2]] for node in model.graph.node
                   if node.op_type == "QuantizeLinear" and len(node.input) > 2]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)


# --- on an NVIDIA GPU -------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize(("precision", "rtol", "atol"), [("fp32", 1e-3, 1e-4),
                                                         ("fp16", 5e-2, 5e-2)])
def test_tensorrt_engine_matches_onnxruntime_cpu(tiny_onnx: Path, precision: str, rtol: float,
                                                 atol: float) -> None:
    options = BackendOptions(device="cuda", precision=precision)
    _require("tensorrt", options)
    inputs = _inputs()
    compiled = get_backend("tensorrt").compile(tiny_onnx, options=options, input_shape=SHAPE)
    try:
        assert isinstance(compiled, TensorRtModel) and compiled.build_seconds > 0
        first = compiled.run(inputs)
        second = compiled.run(_inputs(seed=5))
        np.testing.assert_allclose(first, _ort_cpu(tiny_onnx, inputs), rtol=rtol, atol=atol)
        assert not np.array_equal(first, second)
        compiled.prepare(inputs)
        compiled.run_prepared()
        compiled.synchronize()
        assert compiled.last_gpu_ms() > 0
        compiled.run(_inputs(seed=5))  # a plain run must not disturb the prepared binding
        np.testing.assert_allclose(compiled.prepared_output(), first, rtol=1e-6, atol=1e-6)
        with pytest.raises(ValueError, match="input shape"):
            compiled.run(np.zeros((BATCH + 1, *SAMPLE_SHAPE), np.float32))
    finally:
        compiled.close()


@pytest.mark.gpu
def test_tensorrt_int8_engine_tracks_onnxruntime_cpu(tiny_onnx: Path) -> None:
    options = BackendOptions(device="cuda", precision="int8", calibration=_calibration())
    _require("tensorrt", options)
    inputs = _inputs()
    compiled = get_backend("tensorrt").compile(tiny_onnx, options=options, input_shape=SHAPE)
    try:
        int8 = compiled.run(inputs)
    finally:
        compiled.close()
    fp32 = _ort_cpu(tiny_onnx, inputs)
    scale = float(np.abs(fp32).max())
    assert np.abs(int8 - fp32).max() < 0.1 * scale
    assert (int8.argmax(axis=1) == fp32.argmax(axis=1)).mean() >= 0.75


@pytest.mark.gpu
def test_tensorrt_int8_needs_a_calibration_set(tiny_onnx: Path) -> None:
    options = BackendOptions(device="cuda", precision="int8")
    _require("tensorrt", BackendOptions(device="cuda"))
    with pytest.raises(CompileError, match="^tensorrt: int8 needs a calibration set"):
        get_backend("tensorrt").compile(tiny_onnx, options=options, input_shape=SHAPE)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_is_timed_through_measure_onnx(tiny_onnx: Path, precision: str) -> None:
    options = BackendOptions(device="cuda", precision=precision, calibration=_calibration())
    _require("tensorrt", options)
    measurement = measure_onnx(tiny_onnx, backend="tensorrt", options=options, input_shape=SHAPE,
                               timing=TimingSettings(warmup_runs=5, min_runs=20, min_seconds=0))
    assert measurement.runs >= 20 and 0 < measurement.min_ms <= measurement.median_ms
    assert measurement.compile_seconds > 0 and measurement.precision == precision
    assert get_backend("tensorrt").device_name(options) not in ("", "cuda")  # the GPU's name


@pytest.mark.gpu
def test_tensorrt_rejects_a_corrupt_model(corrupt_onnx: Path) -> None:
    _require("tensorrt", BackendOptions(device="cuda"))
    with pytest.raises(CompileError, match="^tensorrt: cannot parse"):
        get_backend("tensorrt").compile(corrupt_onnx, options=BackendOptions(device="cuda"),
                                        input_shape=SHAPE)


@pytest.mark.gpu
@pytest.mark.parametrize(("device", "precision"), [("cuda", "fp32"), ("tensorrt", "fp32"),
                                                   ("tensorrt", "fp16"), ("tensorrt", "int8")])
def test_onnxruntime_gpu_providers_match_cpu(tiny_onnx: Path, device: str,
                                             precision: str) -> None:
    options = BackendOptions(device=device, precision=precision, calibration=_calibration())
    _require("onnxruntime", options)
    inputs = _inputs()
    compiled = get_backend("onnxruntime").compile(tiny_onnx, options=options, input_shape=SHAPE)
    outputs = compiled.run(inputs)
    expected = _ort_cpu(tiny_onnx, inputs)
    tolerance = {"fp32": 1e-2, "fp16": 5e-2, "int8": 0.1}[precision] * float(np.abs(expected).max())
    assert np.abs(outputs - expected).max() < tolerance
