"""ONNX Runtime: the CPU execution provider, or CUDA / TensorRT where onnxruntime-gpu has them.

``int8`` runs the QDQ model that ``evaluators.quantize.quantize_qdq`` calibrates on
``options.calibration`` (U8S8 on CPU; symmetric S8S8 with ``trt_int8_enable`` on
TensorRT); ``fp16`` is TensorRT's ``trt_fp16_enable``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from evaluators.backends.base import Backend, BackendOptions, CompiledModel
from evaluators.errors import CompileError

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
              "tensorrt": "TensorrtExecutionProvider"}
#: Precisions per device (``int8``/``fp16`` on CUDA alone would mostly fall back to fp32).
_DEVICE_PRECISIONS = {"cpu": ("fp32", "int8"), "cuda": ("fp32",),
                      "tensorrt": ("fp32", "fp16", "int8")}


class OnnxRuntimeModel(CompiledModel):
    """One ``InferenceSession``; ``run`` returns when the (host-copied) output is ready.

    ``prepare`` binds the input and a preallocated output ``OrtValue`` (on the session's
    device) to an IO binding once; ``run_prepared`` is then ``run_with_iobinding`` alone.
    It passes no ``RunOptions``: with them, onnxruntime's Python wrapper looks up an
    absent run-config entry through a C++ exception on every call (~60 µs in 1.32).
    """

    def __init__(self, session: Any, *, device: str) -> None:
        self._session = session
        self._device = device
        self._input_name = session.get_inputs()[0].name
        self._binding: Any = None

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input_name: inputs})[0]

    def prepare(self, inputs: np.ndarray) -> None:
        import onnxruntime

        # one run tells the output shapes for these inputs (dynamic axes resolved)
        outputs = self._session.run(None, {self._input_name: inputs})
        binding = self._session.io_binding()
        device = "cpu" if self._device == "cpu" else "cuda"  # the CUDA and TensorRT EPs
        self._input_value = onnxruntime.OrtValue.ortvalue_from_numpy(
            np.ascontiguousarray(inputs), device, 0)
        binding.bind_ortvalue_input(self._input_name, self._input_value)
        self._output_values = []
        for meta, example in zip(self._session.get_outputs(), outputs, strict=True):
            value = onnxruntime.OrtValue.ortvalue_from_shape_and_type(
                list(example.shape), example.dtype, device, 0)
            binding.bind_ortvalue_output(meta.name, value)
            self._output_values.append(value)
        self._binding = binding

    def run_prepared(self) -> None:
        if self._binding is None:
            raise RuntimeError("run_prepared() before prepare(inputs)")
        self._session.run_with_iobinding(self._binding)

    def prepared_output(self) -> np.ndarray:
        self.run_prepared()
        return np.asarray(self._output_values[0].numpy())


class OnnxRuntimeBackend(Backend):
    """Sequential execution, ``options.threads`` intra-op threads, all graph optimisations."""

    name = "onnxruntime"
    devices = tuple(_PROVIDERS)
    precisions = ("fp32", "fp16", "int8")
    sdk_module = "onnxruntime"
    install_hint = ("`pip install 'paretonas[cpu]'` (onnxruntime), or `paretonas[gpu]` "
                    "(onnxruntime-gpu) for CUDA/TensorRT")

    def unsupported(self, options: BackendOptions) -> str | None:
        reason = super().unsupported(options)
        if reason is None and options.precision not in _DEVICE_PRECISIONS[options.device]:
            supported = ", ".join(_DEVICE_PRECISIONS[options.device])
            reason = (f"{self.name} on {options.device} does not support precision "
                      f"{options.precision!r}; supported there: {supported}"
                      + ("; use device 'tensorrt' for fp16/int8 on a GPU"
                         if options.device == "cuda" else ""))
        return reason

    def availability(self, options: BackendOptions) -> str | None:
        onnxruntime, reason = self.load_sdk(options)
        if onnxruntime is None:
            return reason
        provider = _PROVIDERS[options.device]
        available = onnxruntime.get_available_providers()
        if provider not in available:
            return (f"onnxruntime {onnxruntime.__version__} (wheel {_wheel()}) has no {provider} "
                    f"(available: {', '.join(available)}); install `paretonas[gpu]` "
                    f"(onnxruntime-gpu) instead of `paretonas[cpu]`")
        if options.device != "cpu":
            return _gpu_reason(options.device)
        return None

    def compile(
        self, onnx_path: Path, *, options: BackendOptions,
        input_shape: tuple[int, ...] | None = None,
    ) -> CompiledModel:
        """Create the session; ``input_shape`` is not needed (dynamic axes are kept)."""
        onnxruntime, reason = self.load_sdk(options)
        if onnxruntime is None:
            raise CompileError(reason)

        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = options.threads
        session_options.inter_op_num_threads = 1
        session_options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        session_options.graph_optimization_level = (
            onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        provider = _PROVIDERS[options.device]
        if options.device != "cpu":
            _load_gpu_libraries(onnxruntime, options.device)
        try:
            with tempfile.TemporaryDirectory(prefix="paretonas-ort-") as tmp:
                model_path = _model_for_precision(Path(onnx_path), options, input_shape,
                                                  Path(tmp))
                session = onnxruntime.InferenceSession(
                    str(model_path), session_options,
                    providers=[(provider, _provider_options(options)), _PROVIDERS["cpu"]]
                    if provider != _PROVIDERS["cpu"] else [provider],
                )
        except CompileError:
            raise
        except Exception as error:
            raise CompileError(f"onnxruntime: cannot create a session for {onnx_path}: "
                               f"{error}") from error
        if provider not in session.get_providers():
            raise CompileError(f"onnxruntime: {provider} failed to load for {onnx_path}; "
                               f"session fell back to {session.get_providers()}")
        if options.device == "tensorrt" and input_shape is not None:
            _build_tensorrt_engine(session, input_shape, onnx_path)
        return OnnxRuntimeModel(session, device=options.device)


def _build_tensorrt_engine(session: Any, input_shape: tuple[int, ...], onnx_path: Path) -> None:
    """Run once so that the TensorRT provider builds its engine now (part of the compile
    time, and a build failure is a ``CompileError``), not in the first timed run."""
    try:
        session.run(None, {session.get_inputs()[0].name: np.zeros(input_shape, np.float32)})
    except Exception as error:
        raise CompileError(f"onnxruntime: TensorrtExecutionProvider could not build an engine "
                           f"for {onnx_path} at shape {input_shape}: {error}") from error


def _provider_options(options: BackendOptions) -> dict[str, Any]:
    """Provider options of the GPU execution providers for ``options``."""
    if options.device != "tensorrt":
        return {}
    return {"trt_fp16_enable": options.precision == "fp16",
            "trt_int8_enable": options.precision == "int8"}


def _model_for_precision(onnx_path: Path, options: BackendOptions,
                         input_shape: tuple[int, ...] | None, tmp: Path) -> Path:
    """``onnx_path`` itself, or for ``int8`` its QDQ model calibrated on ``options.calibration``."""
    if options.precision != "int8":
        return onnx_path
    from evaluators.quantize import calibration_batches, quantize_qdq

    try:
        batches = calibration_batches(
            options.calibration, batch_size=input_shape[0] if input_shape else 1,
            sample_shape=tuple(input_shape[1:]) if input_shape else None)
        return quantize_qdq(onnx_path, tmp / "int8.onnx", batches=batches,
                            symmetric_activations=options.device == "tensorrt")
    except CompileError as error:
        raise CompileError(f"onnxruntime: {error}") from error


def _wheel() -> str:
    """Which ONNX Runtime wheel provides the module: they share the name ``onnxruntime``."""
    for name in ("onnxruntime-gpu", "onnxruntime"):
        try:
            importlib.metadata.version(name)
            return name
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def _gpu_reason(device: str) -> str | None:
    """Why the CUDA / TensorRT provider cannot run here (no GPU, no TensorRT), or ``None``."""
    from evaluators.backends.tensorrt_backend import cuda_device_reason, cuda_runtime

    try:
        cudart = cuda_runtime()
    except ImportError as error:
        return (f"cannot check for a CUDA GPU: cuda-python is not installed ({error}); "
                f"install `paretonas[gpu]`")
    reason = cuda_device_reason(cudart, 0)
    if reason:
        return reason
    if device == "tensorrt" and importlib.util.find_spec("tensorrt") is None:
        return ("TensorrtExecutionProvider needs TensorRT's libraries: the tensorrt package "
                "is not installed; install `paretonas[gpu]`")
    return None


def _load_gpu_libraries(onnxruntime: Any, device: str) -> None:
    """Make CUDA/cuDNN (and TensorRT) from pip's nvidia packages loadable by the providers."""
    if hasattr(onnxruntime, "preload_dlls"):
        onnxruntime.preload_dlls()
    if device == "tensorrt":
        try:
            importlib.import_module("tensorrt")  # loads libnvinfer for the provider
        except ImportError as error:
            raise CompileError(f"onnxruntime: TensorrtExecutionProvider needs the tensorrt "
                               f"package ({error}); install `paretonas[gpu]`") from error
