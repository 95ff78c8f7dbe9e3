"""Post-training static INT8 quantization from a calibration set drawn from the dataset.

Three runtimes, three quantizers, one calibration set:

- ONNX Runtime (CPU) and TensorRT: ``quantize_qdq`` runs ONNX Runtime's
  ``quantize_static`` and writes a QDQ ONNX model (QuantizeLinear/DequantizeLinear pairs
  around the quantized ops). TensorRT consumes it as an explicitly quantized network,
  which is TensorRT's recommended INT8 path since 10.1 (its implicit-quantization
  calibrators are deprecated there and removed in 11); TensorRT needs symmetric
  activations, so it asks for ``symmetric_activations=True``.
- OpenVINO: ``quantize_openvino`` runs NNCF's ``nncf.quantize`` on the ``ov.Model``,
  which inserts FakeQuantize operations that the plugins execute in INT8.

The calibration set is a float32 array of samples (``calibration_samples`` draws it
from a dataset's training split); it is fed in batches of the compiled batch size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from evaluators.backends.base import BackendOptions
from evaluators.data import Dataset
from evaluators.errors import CompileError, SettingsError

DEFAULT_CALIBRATION_SAMPLES = 256
"""Samples drawn for calibration unless a caller asks for another number."""


def calibration_samples(dataset: Dataset, *, count: int = DEFAULT_CALIBRATION_SAMPLES,
                        seed: int) -> np.ndarray:
    """``count`` training samples of ``dataset`` (all if it has fewer), drawn by ``seed``.

    Drawn from the training split so that the test split stays held out for
    ``accuracy@<target>``.
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise SettingsError(f"calibration count must be an integer >= 1, got {count!r}")
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(dataset.train_x))[:count]
    return np.ascontiguousarray(dataset.train_x[np.sort(chosen)], dtype=np.float32)


def with_calibration(options: BackendOptions, dataset: Dataset, *, seed: int,
                     count: int = DEFAULT_CALIBRATION_SAMPLES) -> BackendOptions:
    """``options`` with a calibration set drawn from ``dataset`` if its precision is int8."""
    if options.precision != "int8":
        return options
    return dataclasses.replace(options, calibration=calibration_samples(dataset, count=count,
                                                                        seed=seed))


def calibration_batches(calibration: np.ndarray | None, *, batch_size: int,
                        sample_shape: tuple[int, ...] | None = None) -> list[np.ndarray]:
    """``calibration`` cut into whole batches of ``batch_size`` (a ragged tail is dropped).

    Raises ``CompileError`` when there is no calibration set, its samples have the wrong
    shape, or it holds fewer samples than one batch.
    """
    if calibration is None:
        raise CompileError("int8 needs a calibration set: pass BackendOptions(calibration=...) "
                           "(e.g. evaluators.quantize.calibration_samples(dataset, seed=...))")
    if sample_shape is not None and tuple(calibration.shape[1:]) != tuple(sample_shape):
        raise CompileError(f"calibration samples have shape {tuple(calibration.shape[1:])}, "
                           f"the model expects {tuple(sample_shape)}")
    whole = len(calibration) // batch_size
    if whole < 1:
        raise CompileError(f"calibration set has {len(calibration)} samples, fewer than one "
                           f"batch of {batch_size}")
    data = np.ascontiguousarray(calibration, dtype=np.float32)
    return [data[i * batch_size:(i + 1) * batch_size] for i in range(whole)]


def quantize_qdq(onnx_path: Path, output_path: Path, *, batches: list[np.ndarray],
                 symmetric_activations: bool = False) -> Path:
    """Write the QDQ INT8 model of ``onnx_path`` to ``output_path`` (ONNX Runtime's quantizer).

    Weights are signed, symmetric and per output channel; activations are unsigned
    (ONNX Runtime CPU's fast U8S8 kernels) unless ``symmetric_activations`` (signed,
    zero point 0: what TensorRT requires). Ranges come from min/max over ``batches``.
    The model is first pre-processed as ONNX Runtime recommends (shape inference, basic
    graph optimisation): it turns the exporter's Constant nodes into initializers, without
    which e.g. Conv→Clip (ReLU6) pairs stay in float.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self, input_name: str) -> None:
            self._batches: Iterator[np.ndarray] = iter(batches)
            self._input_name = input_name

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {self._input_name: batch}

    preprocessed = output_path.with_name(f"{output_path.stem}.preprocessed.onnx")
    try:
        quant_pre_process(str(onnx_path), str(preprocessed), skip_symbolic_shape=True)
        model = onnx.load(str(preprocessed))
    except Exception as error:
        raise CompileError(f"cannot prepare {onnx_path} for quantization: "
                           f"{type(error).__name__}: {error}") from error
    finally:
        preprocessed.unlink(missing_ok=True)
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise CompileError(f"int8 quantization needs a model with one input, {onnx_path} has "
                           f"{len(inputs)}")
    activation = QuantType.QInt8 if symmetric_activations else QuantType.QUInt8
    try:
        quantize_static(
            model, output_path, _Reader(inputs[0]), quant_format=QuantFormat.QDQ,
            per_channel=True, activation_type=activation, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": symmetric_activations,
                           "WeightSymmetric": True},
        )
    except Exception as error:
        raise CompileError(f"onnxruntime's quantize_static failed on {onnx_path}: "
                           f"{type(error).__name__}: {error}") from error
    return output_path


def quantize_openvino(model: Any, *, batches: list[np.ndarray]) -> Any:
    """The INT8 ``ov.Model`` of ``model`` (NNCF post-training quantization on ``batches``).

    ``model`` must already have the input shape the batches have.
    """
    try:
        import nncf
    except ImportError as error:
        raise CompileError(f"openvino int8 needs nncf ({error}); `pip install nncf`") from error
    try:
        return nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches),
                             preset=nncf.QuantizationPreset.PERFORMANCE)
    except Exception as error:
        raise CompileError(f"nncf.quantize failed: {type(error).__name__}: {error}") from error


def qdq_node_count(onnx_path: Path) -> int:
    """Number of QuantizeLinear and DequantizeLinear nodes in the ONNX file."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    return sum(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in graph.node)
