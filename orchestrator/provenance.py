"""Where a search ran: node, runtime versions and targets (logged with its parent run)."""

from __future__ import annotations

import os
import platform
import socket
from importlib import metadata
from typing import Any

from orchestrator.config import SearchConfig

#: Distributions whose versions decide what a search measures.
RUNTIMES = ("paretonas", "torch", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt",
            "ray", "mlflow", "numpy")


def search_environment(config: SearchConfig) -> dict[str, Any]:
    """JSON-ready description of the driver's node, runtime versions and the targets."""
    versions = {}
    for name in RUNTIMES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "node": {
            "hostname": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(), "cpus": os.cpu_count() or 0,
            "processor": platform.processor() or platform.machine(),
        },
        "runtimes": versions,
        "targets": [target.model_dump(mode="json") for target in config.targets],
    }
