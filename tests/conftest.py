"""Shared fixtures: tiny configs and a real local Ray session."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY_CONFIG: dict[str, Any] = {
    "name": "tiny",
    "seed": 1,
    "space": {"name": "conv-classifier",
              "options": {"num_stages": 2, "depths": [1, 2], "widths": [8, 16]}},
    "dataset": {"name": "digits"},
    "training": {"epochs": 1, "batch_size": 128},
    "targets": [
        {"name": "cpu-ort", "backend": "onnxruntime", "cores": [-1]},
        {"name": "cpu-openvino", "backend": "openvino", "cores": [-1]},
    ],
    "timing": {"warmup_runs": 2, "min_runs": 5, "min_seconds": 0.0, "max_seconds": 0.0},
    "objectives": {"accuracy": "max", "latency_ms@cpu-ort": "min", "params": "min"},
    "searcher": {"name": "nsga2", "options": {"population_size": 4}},
    "budget": {"candidates": 4},
    "ray": {"num_cpus": 2},
}


@pytest.fixture
def tiny_config(tmp_path: Path) -> dict[str, Any]:
    """A 4-candidate search writing its MLflow store and results under ``tmp_path``."""
    config = copy.deepcopy(TINY_CONFIG)
    config["tracking"] = {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "tests"}
    config["output_dir"] = str(tmp_path / "results")
    return config


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """A real in-process Ray with 2 CPUs for the module's tests."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield
    finally:
        ray.shutdown()
