"""ONNX Runtime: the CPU execution provider, or CUDA where onnxruntime-gpu provides it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evaluators.backends.base import Backend, BackendOptions, CompiledModel
from evaluators.errors import CompileError

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class OnnxRuntimeModel(CompiledModel):
    """One ``InferenceSession``; ``run`` returns when the (host-copied) output is ready."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._input_name = session.get_inputs()[0].name

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input_name: inputs})[0]


class OnnxRuntimeBackend(Backend):
    """Sequential execution, ``options.threads`` intra-op threads, all graph optimisations."""

    name = "onnxruntime"
    devices = tuple(_PROVIDERS)
    precisions = ("fp32",)
    sdk_module = "onnxruntime"
    install_hint = "`pip install onnxruntime` (or onnxruntime-gpu for CUDA)"

    def availability(self, options: BackendOptions) -> str | None:
        onnxruntime, reason = self.load_sdk(options)
        if onnxruntime is None:
            return reason
        provider = _PROVIDERS[options.device]
        available = onnxruntime.get_available_providers()
        if provider not in available:
            return (f"onnxruntime has no {provider} here (available: {', '.join(available)}); "
                    f"for CUDA install onnxruntime-gpu on a machine with an NVIDIA GPU")
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
        try:
            session = onnxruntime.InferenceSession(
                str(onnx_path), session_options,
                providers=list(dict.fromkeys([provider, _PROVIDERS["cpu"]])),
            )
        except Exception as error:
            raise CompileError(f"onnxruntime: cannot create a session for {onnx_path}: "
                               f"{error}") from error
        if provider not in session.get_providers():
            raise CompileError(f"onnxruntime: {provider} failed to load for {onnx_path}; "
                               f"session fell back to {session.get_providers()}")
        return OnnxRuntimeModel(session)
