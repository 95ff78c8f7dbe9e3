"""OpenVINO: compile for a static input shape on CPU, GPU or NPU with the latency hint."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from evaluators.backends.base import Backend, BackendOptions, CompiledModel
from evaluators.errors import CompileError

_DEVICES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU"}
# our precision name -> (openvino element type name, OPTIMIZATION_CAPABILITIES entry);
# int8 runs NNCF's quantized model, its remaining float ops at f32
_PRECISIONS = {"fp32": ("f32", "FP32"), "fp16": ("f16", "FP16"), "bf16": ("bf16", "BF16"),
               "int8": ("f32", "INT8")}
_NO_INPUTS: dict[int, Any] = {}  # run_prepared infers on the tensor prepare() set


class OpenVinoModel(CompiledModel):
    """One compiled model and a single ``InferRequest`` reused for synchronous inference.

    ``prepare`` sets the input tensor once (sharing the array's memory); ``run_prepared``
    is the binding's own ``infer`` with no inputs and ``share_outputs``: the outputs stay
    in the request's own tensors (``infer()`` without it copies every output to a new
    array), and the Python wrapper around it (input dispatch, an ``OVDict`` of the
    results: ~2 µs per call, 15% of a 0.015 ms model) is skipped.
    """

    def __init__(self, compiled: Any) -> None:
        from openvino._pyopenvino import InferRequest

        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._infer = InferRequest.infer  # the C++ binding under openvino.InferRequest.infer
        self._bound: np.ndarray | None = None
        self._bound_tensor: Any = None

    def run(self, inputs: np.ndarray) -> np.ndarray:
        self._request.infer({0: inputs}, share_inputs=True, share_outputs=True)
        output = self._request.get_output_tensor(0).data.copy()
        if self._bound_tensor is not None:  # infer(inputs) replaced the prepared tensor
            self._request.set_input_tensor(self._bound_tensor)
        return output

    def prepare(self, inputs: np.ndarray) -> None:
        import openvino

        self._bound = np.ascontiguousarray(inputs)  # the tensor shares this memory
        self._bound_tensor = openvino.Tensor(self._bound, shared_memory=True)
        self._request.set_input_tensor(self._bound_tensor)

    def run_prepared(self) -> None:
        if self._bound is None:
            raise RuntimeError("run_prepared() before prepare(inputs)")
        self._infer(self._request, _NO_INPUTS, True, False)  # share_outputs, decode_strings

    def prepared_output(self) -> np.ndarray:
        self.run_prepared()
        return self._request.get_output_tensor(0).data.copy()


class OpenVinoBackend(Backend):
    """Latency hint, one stream, ``options.threads`` inference threads (CPU only).

    ``precision`` sets ``INFERENCE_PRECISION_HINT``; fp16/bf16 are available only where
    the device lists them in ``OPTIMIZATION_CAPABILITIES``. ``int8`` quantizes the model
    with NNCF on ``options.calibration`` (``evaluators.quantize.quantize_openvino``).
    """

    name = "openvino"
    devices = tuple(_DEVICES)
    precisions = tuple(_PRECISIONS)
    sdk_module = "openvino"
    install_hint = "`pip install openvino`"

    def device_name(self, options: BackendOptions) -> str:
        """OpenVINO's ``FULL_DEVICE_NAME`` of the device (falls back to the CPU model)."""
        openvino, _ = self.load_sdk(options)
        device = _DEVICES.get(options.device, options.device.upper())
        if openvino is None or device not in {
            name.split(".")[0] for name in shared_core().available_devices
        }:
            return super().device_name(options)
        return str(shared_core().get_property(device, "FULL_DEVICE_NAME"))

    def availability(self, options: BackendOptions) -> str | None:
        openvino, reason = self.load_sdk(options)
        if openvino is None:
            return reason
        if options.precision == "int8" and importlib.util.find_spec("nncf") is None:
            return "openvino int8 quantizes with NNCF, which is not installed; `pip install nncf`"
        core = shared_core()
        device = _DEVICES[options.device]
        present = core.available_devices
        if not any(name.split(".")[0] == device for name in present):
            return (f"openvino sees no {device} device on this machine "
                    f"(available: {', '.join(present) or 'none'})")
        capabilities = core.get_property(device, "OPTIMIZATION_CAPABILITIES")
        capability = _PRECISIONS[options.precision][1]
        if capability not in capabilities:
            return (f"openvino {device} does not support {options.precision} here "
                    f"(capabilities: {', '.join(capabilities)})")
        return None

    def compile(
        self, onnx_path: Path, *, options: BackendOptions,
        input_shape: tuple[int, ...] | None = None,
    ) -> CompiledModel:
        """Read with the ONNX frontend, fix the input to ``input_shape``, compile."""
        openvino, reason = self.load_sdk(options)
        if openvino is None:
            raise CompileError(reason)
        import openvino.properties as props
        import openvino.properties.hint as hints
        from openvino.frontend import FrontEndManager

        device = _DEVICES[options.device]
        config: dict[Any, Any] = {
            hints.performance_mode: hints.PerformanceMode.LATENCY,
            hints.inference_precision: getattr(openvino.Type, _PRECISIONS[options.precision][0]),
            props.num_streams: 1,
        }
        if device == "CPU":
            config[props.inference_num_threads] = options.threads
        try:
            frontend = FrontEndManager().load_by_framework("onnx")
            model = frontend.convert(frontend.load(str(onnx_path)))
            if len(model.inputs) != 1:
                raise CompileError(f"openvino: {onnx_path} has {len(model.inputs)} inputs, "
                                   f"expected 1")
            if input_shape is not None:
                model.reshape(list(input_shape))
            if options.precision == "int8":
                model = _quantized(model, options, input_shape)
            compiled = shared_core().compile_model(model, device, config)
            return OpenVinoModel(compiled)
        except CompileError:
            raise
        except Exception as error:
            raise CompileError(f"openvino: compiling {onnx_path} for {device} failed: "
                               f"{_message(error)}") from error


@functools.cache
def shared_core() -> Any:
    """The process's one ``openvino.Core``.

    Every ``Core`` loads its own CPU plugin, which installs an alternate signal stack on
    the calling thread when it loads and restores the one it found when it unloads. With
    several Cores alive (one per compiled model) they unload out of order, leaving the
    thread on a freed stack: the next signal handled in Python (a SIGTERM from Ray or
    Tune) crashed the process with SIGSEGV. One Core loads the plugin once."""
    import openvino

    return openvino.Core()


def _quantized(model: Any, options: BackendOptions, input_shape: tuple[int, ...] | None) -> Any:
    from evaluators.quantize import calibration_batches, quantize_openvino

    try:
        batches = calibration_batches(
            options.calibration, batch_size=input_shape[0] if input_shape else 1,
            sample_shape=tuple(input_shape[1:]) if input_shape else None)
        return quantize_openvino(model, batches=batches)
    except CompileError as error:
        raise CompileError(f"openvino: {error}") from error


def _message(error: BaseException) -> str:
    """OpenVINO's message without its ``Exception from <source file>`` trace lines."""
    lines = [line.strip() for line in str(error).splitlines()]
    kept = [line for line in lines if line and not line.startswith("Exception from")]
    return " ".join(kept) or type(error).__name__
