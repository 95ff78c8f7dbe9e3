"""PyTorch baseline: the candidate's own program, run eagerly or through ``torch.compile``.

It needs the PyTorch program, not the ONNX graph: ``save_torch_program`` writes it with
``torch.export.save`` next to the ONNX file as ``<stem>.pt2``, and ``compile`` loads it
from there. Without that file compiling fails with a ``CompileError`` saying how to
write it.

``torch-eager`` runs the exported program's module: ATen operators called from generated
Python code, plus the export's input checks. Its per-operator cost is higher than the
original ``nn.Module``'s (about 4× on a small conv net here), so it is an upper bound of
eager PyTorch; ``torch-compile`` removes that cost.

``torch.set_num_threads`` is process-wide: compiling sets it to ``options.threads`` and
``close`` restores the previous value, so two torch models timed in one process should
use the same thread count.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from evaluators.backends.base import Backend, BackendOptions, CompiledModel, cpu_model_name
from evaluators.errors import CompileError, ExportError

PROGRAM_SUFFIX = ".pt2"


def program_path(onnx_path: Path) -> Path:
    """Where the PyTorch program of ``onnx_path`` lives: the same path with ``.pt2``."""
    return Path(onnx_path).with_suffix(PROGRAM_SUFFIX)


def save_torch_program(model: Any, *, example_input: Any, onnx_path: Path) -> Path:
    """Export ``model`` (an ``nn.Module``) with ``torch.export`` next to ``onnx_path``.

    The batch axis stays dynamic, like the ONNX export's. Returns the ``.pt2`` path;
    raises ``ExportError`` naming the cause.
    """
    import torch

    path = program_path(onnx_path)
    # a batch of 1 would specialise the axis to 1; trace with 2 and declare it dynamic
    example = example_input[:1].expand(2, *example_input.shape[1:]).contiguous()
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        exported = torch.export.export(model.eval(), (example,), dynamic_shapes=({0: batch},))
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(exported, path)
    except Exception as error:
        raise ExportError(f"torch.export of {type(model).__name__} to {path} failed: "
                          f"{error}") from error
    return path


class TorchModel(CompiledModel):
    """A loaded (optionally compiled) module on its device, run under ``inference_mode``."""

    def __init__(self, module: Any, *, device: str, previous_threads: int) -> None:
        import torch

        self._torch = torch
        self._module = module
        self._device = device
        self._previous_threads = previous_threads
        self._bound: Any = None

    def run(self, inputs: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            output = self._module(torch.from_numpy(np.ascontiguousarray(inputs)).to(self._device))
        return _first(output).cpu().numpy()

    def prepare(self, inputs: np.ndarray) -> None:
        self._bound = self._torch.from_numpy(np.ascontiguousarray(inputs)).to(self._device)

    def run_prepared(self) -> None:
        if self._bound is None:
            raise RuntimeError("run_prepared() before prepare(inputs)")
        with self._torch.inference_mode():
            self._module(self._bound)

    def prepared_output(self) -> np.ndarray:
        if self._bound is None:
            raise RuntimeError("prepared_output() before prepare(inputs)")
        with self._torch.inference_mode():
            return _first(self._module(self._bound)).cpu().numpy()

    def synchronize(self) -> None:
        if self._device == "cuda":
            self._torch.cuda.synchronize()

    def close(self) -> None:
        self._torch.set_num_threads(self._previous_threads)


def _first(output: Any) -> Any:
    return output[0] if isinstance(output, tuple | list) else output


class TorchBackend(Backend):
    """``torch-eager`` runs the exported program's module; ``torch-compile`` wraps it in
    ``torch.compile`` (Inductor; compiled during ``compile`` so it counts as compile time)."""

    devices = ("cpu", "cuda")
    precisions = ("fp32",)
    sdk_module = "torch"
    install_hint = "`pip install torch`"
    needs_torch_program = True

    def __init__(self, *, name: str, use_compile: bool) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"TorchBackend name must be a non-empty string, got {name!r}")
        self.name = name
        self.use_compile = bool(use_compile)

    def availability(self, options: BackendOptions) -> str | None:
        torch, reason = self.load_sdk(options)
        if torch is None:
            return reason
        if options.device == "cuda" and not torch.cuda.is_available():
            return "torch sees no CUDA device here (CPU-only build or no NVIDIA GPU)"
        if self.use_compile and options.device == "cpu" and not any(
            shutil.which(compiler) for compiler in ("g++", "c++", "clang++")
        ):
            return "torch.compile on CPU needs a C++ compiler (g++ or clang++) on PATH"
        return None

    def device_name(self, options: BackendOptions) -> str:
        if options.device == "cuda":
            torch, _ = self.load_sdk(options)
            if torch is not None and torch.cuda.is_available():
                return str(torch.cuda.get_device_name(0))
            return "cuda"
        return cpu_model_name()

    def compile(
        self, onnx_path: Path, *, options: BackendOptions,
        input_shape: tuple[int, ...] | None = None,
    ) -> CompiledModel:
        """Load ``<stem>.pt2`` next to ``onnx_path``; with torch.compile, compile it for
        ``input_shape`` (a first call), so that the timed loop does not include it."""
        torch, reason = self.load_sdk(options)
        if torch is None:
            raise CompileError(f"{self.name}: {reason}")
        path = program_path(onnx_path)
        if not path.is_file():
            raise CompileError(
                f"{self.name}: needs the PyTorch program {path} next to {Path(onnx_path).name}; "
                f"write it with evaluators.backends.torch_backend.save_torch_program(model, "
                f"example_input=..., onnx_path=...) (torch.export.save)")
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(options.threads)
        try:
            module = torch.export.load(path).module().to(options.device)
            if self.use_compile:
                module = torch.compile(module, dynamic=False)
            model = TorchModel(module, device=options.device,
                               previous_threads=previous_threads)
            if self.use_compile and input_shape is not None:
                model.run(np.zeros(input_shape, dtype=np.float32))
        except Exception as error:
            torch.set_num_threads(previous_threads)
            raise CompileError(f"{self.name}: loading {path} for {options.device} failed: "
                               f"{type(error).__name__}: {error}") from error
        return model
