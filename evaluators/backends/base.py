"""The backend protocol: compile an ONNX file for a device, then run it."""

from __future__ import annotations

import functools
import importlib
import platform
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from evaluators.errors import SettingsError


@dataclass(frozen=True, kw_only=True)
class BackendOptions:
    """How to compile: on which device, at which precision, with how many threads.

    ``calibration`` (float32, samples × sample shape, e.g. from
    ``evaluators.quantize.calibration_samples``) is what ``int8`` quantizes from; other
    precisions ignore it.
    """

    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 1
    calibration: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("device", "precision"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise SettingsError(f"BackendOptions.{name} must be a non-empty string, "
                                    f"got {value!r}")
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 1:
            raise SettingsError(f"BackendOptions.threads must be an integer >= 1, "
                                f"got {self.threads!r}")
        calibration = self.calibration
        if calibration is not None and not (
            isinstance(calibration, np.ndarray) and calibration.dtype == np.float32
            and calibration.ndim >= 2 and len(calibration) >= 1
        ):
            raise SettingsError(
                "BackendOptions.calibration must be a float32 array of samples "
                f"(samples × sample shape), got {type(calibration).__name__} "
                f"{getattr(calibration, 'dtype', '')}{getattr(calibration, 'shape', '')}"
            )


class CompiledModel(ABC):
    """A model ready to run on its device.

    ``run(inputs)`` is the convenient call (returns the first output, a host array). The
    timing loop uses ``prepare(inputs)`` once, then ``run_prepared()`` per sample: a
    backend overrides both to bind the input and preallocated outputs once (IO binding,
    pre-set tensors), so that a timed call does nothing but infer. The defaults fall back
    to ``run``. Both must return only once the result is ready (or ``synchronize`` waits).
    A ``run`` between ``prepare`` and ``run_prepared`` must not disturb the binding.
    """

    _prepared_inputs: np.ndarray | None = None

    @abstractmethod
    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Run one inference on ``inputs`` and return the first output as a numpy array."""

    def prepare(self, inputs: np.ndarray) -> None:
        """Bind ``inputs`` (and preallocated outputs) for ``run_prepared``."""
        self._prepared_inputs = inputs

    def run_prepared(self) -> None:
        """Run one inference on the bound buffers; the output stays on the device/buffer."""
        if self._prepared_inputs is None:
            raise RuntimeError("run_prepared() before prepare(inputs)")
        self.run(self._prepared_inputs)

    def prepared_output(self) -> np.ndarray:
        """Run once on the bound buffers; the first output as a host array (untimed checks)."""
        if self._prepared_inputs is None:
            raise RuntimeError("prepared_output() before prepare(inputs)")
        return self.run(self._prepared_inputs)

    def synchronize(self) -> None:  # noqa: B027  (optional hook, no-op by default)
        """Wait until queued device work is done (asynchronous devices override this)."""

    def close(self) -> None:  # noqa: B027  (optional hook, no-op by default)
        """Release runtime resources."""


class Backend(ABC):
    """A runtime that compiles ONNX models: ONNX Runtime, OpenVINO, TensorRT, ...

    Lifecycle: ``availability()`` says whether it can run here; ``compile()`` turns an
    ONNX file into a ``CompiledModel`` (timed separately as compile time); the timing
    loop in ``evaluators.timing`` then runs it. Heavy SDKs are imported inside
    ``compile`` so that importing the registry never needs them.
    """

    name: str
    devices: tuple[str, ...] = ("cpu",)
    precisions: tuple[str, ...] = ("fp32",)
    #: The runtime's Python SDK (imported lazily) and how to install it.
    sdk_module: str
    install_hint: str
    #: Compiles the PyTorch program (``<stem>.pt2``, see ``torch_backend``) rather than the
    #: ONNX graph: a search then exports that program too and sends it with the ONNX file.
    needs_torch_program: bool = False

    def load_sdk(self, options: BackendOptions) -> tuple[ModuleType | None, str | None]:
        """``(sdk, None)`` if ``options`` are supported and the SDK imports, else ``(None, why)``."""
        reason = self.unsupported(options)
        if reason:
            return None, reason
        try:
            return importlib.import_module(self.sdk_module), None
        except ImportError as error:
            return None, f"{self.sdk_module} is not installed ({error}); {self.install_hint}"

    def unsupported(self, options: BackendOptions) -> str | None:
        """Why ``options`` name a device or precision this backend lacks; ``None`` if none."""
        if options.device not in self.devices:
            return (f"{self.name} has no device {options.device!r}; "
                    f"supported: {', '.join(self.devices)}")
        if options.precision not in self.precisions:
            return (f"{self.name} does not support precision {options.precision!r}; "
                    f"supported: {', '.join(self.precisions)}")
        return None

    def runtime_version(self) -> str:
        """The runtime's version (its SDK's ``__version__``), "unknown" if it has none."""
        try:
            module = importlib.import_module(self.sdk_module)
        except ImportError:
            return "not installed"
        return str(getattr(module, "__version__", "unknown"))

    def device_name(self, options: BackendOptions) -> str:
        """A human-readable name of the device ``options`` select (the CPU model on cpu)."""
        return cpu_model_name() if options.device == "cpu" else options.device

    @abstractmethod
    def availability(self, options: BackendOptions) -> str | None:
        """``None`` if this backend can run with ``options`` here, else the reason it cannot."""

    @abstractmethod
    def compile(
        self, onnx_path: Path, *, options: BackendOptions,
        input_shape: tuple[int, ...] | None = None,
    ) -> CompiledModel:
        """Compile ``onnx_path``; raise ``CompileError`` naming the cause on failure.

        ``input_shape`` (batch first) is the shape ``run`` will get; backends that
        compile for static shapes fix the model's dynamic axes to it. ``None`` keeps
        the model's own shapes.
        """


@functools.cache
def cpu_model_name() -> str:
    """This machine's CPU model, from /proc/cpuinfo (Linux) or ``platform``."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in (cpuinfo.read_text() if cpuinfo.is_file() else "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"
