"""A test-only backend, registered on import (pools import it through ``plugins``).

``testing`` compiles with ONNX Runtime, except that a model file whose name
starts with ``hang`` never finishes compiling, and one named
``record-<token>-...`` appends its (start, end) wall-clock interval, from compile
to close, to ``<tmp>/paretonas-test-<token>.log``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from evaluators.backends import BACKENDS
from evaluators.backends.base import Backend, BackendOptions, CompiledModel
from evaluators.backends.onnxruntime_backend import OnnxRuntimeBackend


def interval_log(token: str) -> Path:
    return Path(tempfile.gettempdir()) / f"paretonas-test-{token}.log"


class _Recorded(CompiledModel):
    def __init__(self, inner: CompiledModel, log: Path, started: float) -> None:
        self._inner, self._log, self._started = inner, log, started

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self._inner.run(inputs)

    def close(self) -> None:
        self._inner.close()
        with open(self._log, "a") as log:
            log.write(f"{self._started} {time.time()} {os.getpid()}\n")


class TestingBackend(Backend):
    name = "testing"
    devices = ("cpu",)
    precisions = ("fp32",)
    sdk_module = "onnxruntime"
    install_hint = "`pip install onnxruntime`"

    def availability(self, options: BackendOptions) -> str | None:
        return self.load_sdk(options)[1]

    def compile(self, onnx_path: Path, *, options: BackendOptions,
                input_shape: tuple[int, ...] | None = None) -> CompiledModel:
        started = time.time()
        if onnx_path.stem.startswith("hang"):
            time.sleep(3600)
        model = OnnxRuntimeBackend().compile(onnx_path, options=options, input_shape=input_shape)
        if onnx_path.stem.startswith("record-"):
            return _Recorded(model, interval_log(onnx_path.stem.split("-")[1]), started)
        return model


if TestingBackend.name not in BACKENDS:
    BACKENDS.register(TestingBackend.name, TestingBackend())
