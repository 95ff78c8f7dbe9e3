"""Native TensorRT: build an engine from ONNX for one fixed input shape, run it on a stream.

Precisions follow TensorRT's strong typing (the only mode in TensorRT 11, recommended
in 10): the network's types come from the ONNX model, so

- ``fp32`` builds the ONNX file as it is;
- ``fp16`` first converts the model's float tensors to float16, keeping float32 inputs
  and outputs (ONNX Runtime's ``convert_float_to_float16``);
- ``int8`` first quantizes it to a QDQ model calibrated on ``options.calibration``
  (``evaluators.quantize.quantize_qdq``, symmetric as TensorRT requires), which
  TensorRT builds as an explicitly quantized network.

Device memory, the stream and CUDA events come from cuda-python's runtime bindings.
``run_prepared`` enqueues one inference between two CUDA events; ``synchronize`` waits
for it; ``last_gpu_ms`` is then the event-timed GPU time of that inference.
"""

from __future__ import annotations

import importlib
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from evaluators.backends.base import Backend, BackendOptions, CompiledModel
from evaluators.errors import BenchmarkError, CompileError

_INSTALL = "install the GPU extra: `pip install 'paretonas[gpu]'` (instead of `[cpu]`)"


def cuda_runtime() -> ModuleType:
    """cuda-python's CUDA runtime bindings (``cuda.bindings.runtime``, or the older
    ``cuda.cudart``); ``ImportError`` if cuda-python is not installed."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError:
        return importlib.import_module("cuda.cudart")


def cuda_call(cudart: ModuleType, result: Any) -> Any:
    """Unpack a cuda-python ``(error, value...)`` tuple; raise ``RuntimeError`` on an error."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if error != cudart.cudaError_t.cudaSuccess:
        _, text = cudart.cudaGetErrorString(error)
        name = getattr(error, "name", str(error))
        raise RuntimeError(f"CUDA error {name}: {text.decode() if isinstance(text, bytes) else text}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def cuda_device_index(device: str) -> int | None:
    """``cuda`` → 0, ``cuda:N`` → N, anything else → ``None``."""
    if device == "cuda":
        return 0
    prefix, _, index = device.partition(":")
    if prefix == "cuda" and index.isdigit():
        return int(index)
    return None


def cuda_device_reason(cudart: ModuleType, index: int) -> str | None:
    """Why CUDA device ``index`` cannot be used here, or ``None``."""
    try:
        error, count = cudart.cudaGetDeviceCount()
    except RuntimeError as failure:  # cuda-python could not load the CUDA driver library
        return f"no usable CUDA GPU: {failure}; an NVIDIA GPU and driver are needed"
    if error != cudart.cudaError_t.cudaSuccess:
        _, text = cudart.cudaGetErrorString(error)
        text = text.decode() if isinstance(text, bytes) else text
        return (f"no usable CUDA GPU: cudaGetDeviceCount failed with "
                f"{getattr(error, 'name', error)} ({text}); an NVIDIA GPU and driver are needed")
    if count < 1:
        return "no CUDA GPU is visible (cudaGetDeviceCount = 0; check CUDA_VISIBLE_DEVICES)"
    if index >= count:
        return f"CUDA device {index} does not exist here ({count} visible)"
    return None


class TensorRtModel(CompiledModel):
    """One engine, one execution context, device buffers and a stream allocated once."""

    def __init__(self, *, trt: ModuleType, cudart: ModuleType, engine: Any,
                 input_shape: tuple[int, ...], device_index: int, build_seconds: float) -> None:
        #: Seconds the engine build alone took (conversion/quantization before it excluded).
        self.build_seconds = build_seconds
        self._cudart = cudart
        self._engine = engine
        self._device_index = device_index
        self._buffers: list[int] = []
        self._events: list[Any] = []
        self._stream: Any = None
        self._context: Any = None
        try:
            self._setup(trt, input_shape)
        except Exception:
            self.close()
            raise

    def _setup(self, trt: ModuleType, input_shape: tuple[int, ...]) -> None:
        cudart, engine = self._cudart, self._engine
        cuda_call(cudart, cudart.cudaSetDevice(self._device_index))
        self._context = context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or not outputs:
            raise CompileError(f"tensorrt: engine has inputs {inputs} and outputs {outputs}; "
                               f"expected one input and at least one output")
        self._input_name, self._output_name = inputs[0], outputs[0]
        if not context.set_input_shape(self._input_name, input_shape):
            raise CompileError(f"tensorrt: input shape {input_shape} is outside the engine's "
                               f"profile")
        self.input_shape = tuple(input_shape)
        self._input_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._input_name)))
        self._output = np.empty(tuple(context.get_tensor_shape(self._output_name)),
                                dtype=np.dtype(trt.nptype(engine.get_tensor_dtype(self._output_name))))
        self._stream = cuda_call(cudart, cudart.cudaStreamCreate())
        for name in names:
            shape = tuple(context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
            pointer = int(cuda_call(cudart, cudart.cudaMalloc(nbytes)))
            self._buffers.append(pointer)
            if not context.set_tensor_address(name, pointer):
                raise CompileError(f"tensorrt: cannot bind tensor {name!r}")
            if name == self._input_name:
                self._input_pointer, self._input_nbytes = pointer, nbytes
                # a plain run() copies into its own buffer, so the prepared input stays bound
                self._run_input_pointer = int(cuda_call(cudart, cudart.cudaMalloc(nbytes)))
                self._buffers.append(self._run_input_pointer)
            if name == self._output_name:
                self._output_pointer = pointer
        self._events = [cuda_call(cudart, cudart.cudaEventCreate()) for _ in range(2)]
        self._prepared = False
        self._last_gpu_ms: float | None = None

    def _copy_in(self, inputs: np.ndarray, pointer: int) -> None:
        if tuple(inputs.shape) != self.input_shape:
            raise ValueError(f"tensorrt engine was built for input shape {self.input_shape}, "
                             f"got {tuple(inputs.shape)}")
        host = np.ascontiguousarray(inputs, dtype=self._input_dtype)
        cudart = self._cudart
        cuda_call(cudart, cudart.cudaMemcpyAsync(
            pointer, host.ctypes.data, host.nbytes,
            cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self._stream))
        cuda_call(cudart, cudart.cudaStreamSynchronize(self._stream))

    def _copy_out(self) -> np.ndarray:
        cudart = self._cudart
        cuda_call(cudart, cudart.cudaMemcpyAsync(
            self._output.ctypes.data, self._output_pointer, self._output.nbytes,
            cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self._stream))
        self.synchronize()
        return self._output.copy()

    def _enqueue(self) -> None:
        cudart = self._cudart
        start, end = self._events
        cuda_call(cudart, cudart.cudaEventRecord(start, self._stream))
        if not self._context.execute_async_v3(stream_handle=self._stream):
            raise RuntimeError("tensorrt: execute_async_v3 failed to enqueue the inference")
        cuda_call(cudart, cudart.cudaEventRecord(end, self._stream))
        self._last_gpu_ms = None

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Copy ``inputs`` in, run, copy the first output back; returns a fresh array.

        Uses its own input buffer and rebinds the prepared one afterwards, so a plain run
        between ``prepare`` and ``run_prepared`` does not disturb the binding.
        """
        self._copy_in(inputs, self._run_input_pointer)
        self._context.set_tensor_address(self._input_name, self._run_input_pointer)
        try:
            self._enqueue()
            return self._copy_out()
        finally:
            self._context.set_tensor_address(self._input_name, self._input_pointer)

    def prepare(self, inputs: np.ndarray) -> None:
        """Copy ``inputs`` to the bound device buffer once; ``run_prepared`` reuses it."""
        self._copy_in(inputs, self._input_pointer)
        self._prepared = True

    def prepared_output(self) -> np.ndarray:
        """Run once on the bound buffers; the first output copied to the host."""
        self.run_prepared()
        return self._copy_out()

    def run_prepared(self) -> None:
        """Enqueue one inference on the bound device buffers (no host copies);
        ``synchronize`` waits for it."""
        if not self._prepared:
            raise BenchmarkError("tensorrt: run_prepared() before prepare(inputs)")
        self._enqueue()

    def synchronize(self) -> None:
        cuda_call(self._cudart, self._cudart.cudaStreamSynchronize(self._stream))

    def last_gpu_ms(self) -> float:
        """CUDA-event time in ms of the last inference (call after ``synchronize``)."""
        if self._last_gpu_ms is None:
            start, end = self._events
            self._last_gpu_ms = float(cuda_call(
                self._cudart, self._cudart.cudaEventElapsedTime(start, end)))
        return self._last_gpu_ms

    def close(self) -> None:
        cudart = self._cudart
        if self._stream is not None:
            cudart.cudaStreamSynchronize(self._stream)
        for event in self._events:
            cudart.cudaEventDestroy(event)
        for pointer in self._buffers:
            cudart.cudaFree(pointer)
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
        self._events, self._buffers, self._stream = [], [], None
        self._context = None


class TensorRtBackend(Backend):
    """Engine built with an optimization profile fixed to the input shape.

    The compiled model's ``build_seconds`` is the engine build alone; the compile time
    ``measure_onnx`` reports also holds the fp16 conversion or int8 calibration before it.
    """

    name = "tensorrt"
    devices = ("cuda",)
    precisions = ("fp32", "fp16", "int8")
    sdk_module = "tensorrt"
    install_hint = _INSTALL
    #: Builder workspace limit.
    workspace_bytes = 1 << 30

    def unsupported(self, options: BackendOptions) -> str | None:
        if cuda_device_index(options.device) is None:
            return (f"{self.name} has no device {options.device!r}; supported: cuda, cuda:N")
        if options.precision not in self.precisions:
            return (f"{self.name} does not support precision {options.precision!r}; "
                    f"supported: {', '.join(self.precisions)}")
        return None

    def load_sdk(self, options: BackendOptions) -> tuple[ModuleType | None, str | None]:
        """As the base, but a TensorRT whose shared libraries fail to load is a reason too."""
        try:
            return super().load_sdk(options)
        except OSError as error:
            return None, f"tensorrt is installed but its libraries do not load ({error})"

    def availability(self, options: BackendOptions) -> str | None:
        trt, reason = self.load_sdk(options)
        if trt is None:
            return reason
        try:
            cudart = cuda_runtime()
        except ImportError as error:
            return f"cuda-python is not installed ({error}); {_INSTALL}"
        return cuda_device_reason(cudart, _device_index(options))

    def device_name(self, options: BackendOptions) -> str:
        """The GPU's name (``cudaGetDeviceProperties``), else the device string."""
        index = cuda_device_index(options.device)
        try:
            cudart = cuda_runtime()
            if index is None or cuda_device_reason(cudart, index):
                return options.device
            properties = cuda_call(cudart, cudart.cudaGetDeviceProperties(index))
        except (ImportError, RuntimeError):
            return options.device
        name = properties.name
        return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\x00")

    def compile(
        self, onnx_path: Path, *, options: BackendOptions,
        input_shape: tuple[int, ...] | None = None,
    ) -> CompiledModel:
        """Convert for the precision, build the engine for ``input_shape``, load it."""
        trt, reason = self.load_sdk(options)
        if trt is None:
            raise CompileError(reason)
        try:
            cudart = cuda_runtime()
        except ImportError as error:
            raise CompileError(f"tensorrt: cuda-python is not installed ({error}); "
                               f"{_INSTALL}") from error
        index = _device_index(options)
        reason = cuda_device_reason(cudart, index)
        if reason:
            raise CompileError(f"tensorrt: {reason}")
        onnx_path = Path(onnx_path)
        with tempfile.TemporaryDirectory(prefix="paretonas-trt-") as tmp:
            model_bytes = _model_for_precision(onnx_path, options, input_shape, Path(tmp))
        try:
            cuda_call(cudart, cudart.cudaSetDevice(index))
            start = time.perf_counter()
            engine, shape = self._build(trt, model_bytes, onnx_path, input_shape,
                                        options.precision)
            build_seconds = time.perf_counter() - start
            return TensorRtModel(trt=trt, cudart=cudart, engine=engine, input_shape=shape,
                                 device_index=index, build_seconds=build_seconds)
        except CompileError:
            raise
        except Exception as error:
            raise CompileError(f"tensorrt: building {onnx_path} failed: "
                               f"{type(error).__name__}: {error}") from error

    def _build(self, trt: ModuleType, model_bytes: bytes, onnx_path: Path,
               input_shape: tuple[int, ...] | None, precision: str
               ) -> tuple[Any, tuple[int, ...]]:
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        flags = 0
        creation_flags = getattr(trt, "NetworkDefinitionCreationFlag", None)
        strongly_typed = getattr(creation_flags, "STRONGLY_TYPED", None)
        if strongly_typed is not None:  # TensorRT 10; TensorRT 11 is always strongly typed
            flags |= 1 << int(strongly_typed)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(model_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise CompileError(f"tensorrt: cannot parse {onnx_path}: {errors or 'unknown error'}")
        if network.num_inputs != 1:
            raise CompileError(f"tensorrt: {onnx_path} has {network.num_inputs} inputs, "
                               f"expected 1")
        network_input = network.get_input(0)
        shape = tuple(int(d) for d in (input_shape or tuple(network_input.shape)))
        if min(shape, default=-1) < 1:
            raise CompileError(f"tensorrt: {onnx_path} has dynamic input shape "
                               f"{tuple(network_input.shape)}; pass input_shape")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_bytes)
        tf32 = getattr(trt.BuilderFlag, "TF32", None)
        if precision == "fp32" and tf32 is not None:
            config.clear_flag(tf32)  # fp32 means fp32: no TF32 tensor-core rounding
        profile = builder.create_optimization_profile()
        profile.set_shape(network_input.name, shape, shape, shape)
        config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise CompileError(f"tensorrt: the builder produced no engine for {onnx_path} at "
                               f"shape {shape} (see TensorRT's log above)")
        engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
        if engine is None:
            raise CompileError(f"tensorrt: cannot load the engine built for {onnx_path}")
        return engine, shape


def _device_index(options: BackendOptions) -> int:
    index = cuda_device_index(options.device)
    if index is None:
        raise CompileError(f"tensorrt has no device {options.device!r}; supported: cuda, cuda:N")
    return index


def _model_for_precision(onnx_path: Path, options: BackendOptions,
                         input_shape: tuple[int, ...] | None, tmp: Path) -> bytes:
    """The ONNX bytes TensorRT builds: as is, converted to fp16, or QDQ-quantized."""
    if options.precision == "fp32":
        try:
            return onnx_path.read_bytes()
        except OSError as error:
            raise CompileError(f"tensorrt: cannot read {onnx_path}: {error}") from error
    if options.precision == "fp16":
        return float16_model_bytes(onnx_path)
    from evaluators.quantize import calibration_batches, quantize_qdq

    batch_size = input_shape[0] if input_shape else 1
    sample_shape = tuple(input_shape[1:]) if input_shape else None
    try:
        batches = calibration_batches(options.calibration, batch_size=batch_size,
                                      sample_shape=sample_shape)
        quantized = quantize_qdq(onnx_path, tmp / "int8.onnx", batches=batches,
                                 symmetric_activations=True)
    except CompileError as error:
        raise CompileError(f"tensorrt: {error}") from error
    return quantized.read_bytes()


def float16_model_bytes(onnx_path: Path) -> bytes:
    """``onnx_path`` with float tensors converted to float16, inputs/outputs kept float32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        model = convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
    except Exception as error:
        raise CompileError(f"tensorrt: converting {onnx_path} to fp16 failed: "
                           f"{type(error).__name__}: {error}") from error
    return bytes(model.SerializeToString())
