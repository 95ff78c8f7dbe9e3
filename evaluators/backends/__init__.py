"""Backends by name: the built-ins plus any published under ``paretonas.backends``.

A third-party entry point names a ``Backend`` instance.
"""

from evaluators.backends.base import Backend, BackendOptions, CompiledModel
from evaluators.backends.onnxruntime_backend import OnnxRuntimeBackend
from evaluators.backends.openvino_backend import OpenVinoBackend
from evaluators.backends.tensorrt_backend import TensorRtBackend
from evaluators.backends.torch_backend import TorchBackend
from search_spaces.registry import Registry

BACKENDS: Registry[Backend] = Registry("backend", entry_point_group="paretonas.backends")
BACKENDS.register(OnnxRuntimeBackend.name, OnnxRuntimeBackend())
BACKENDS.register(OpenVinoBackend.name, OpenVinoBackend())
BACKENDS.register(TensorRtBackend.name, TensorRtBackend())
BACKENDS.register("torch-eager", TorchBackend(name="torch-eager", use_compile=False))
BACKENDS.register("torch-compile", TorchBackend(name="torch-compile", use_compile=True))


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``; unknown names fail listing the known ones."""
    return BACKENDS.get(name)


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendOptions",
    "CompiledModel",
    "OnnxRuntimeBackend",
    "OpenVinoBackend",
    "TensorRtBackend",
    "TorchBackend",
    "get_backend",
]
