"""Discovery probes this machine for real."""

from __future__ import annotations

import importlib.metadata
import os

import pytest

from hardware_pool.discovery import probe_node, resource_name


def test_resource_names_follow_the_documented_scheme() -> None:
    assert resource_name("openvino", "cpu") == "paretonas/openvino/cpu"
    assert resource_name("onnxruntime", "cuda:1") == "paretonas/onnxruntime/cuda"


def test_this_node_serves_the_cpu_runtimes() -> None:
    inventory = probe_node()
    assert list(inventory.cores) == sorted(os.sched_getaffinity(0))
    assert inventory.cpu_model
    served = {(t.backend, t.device): t for t in inventory.targets}
    assert "fp32" in served[("onnxruntime", "cpu")].precisions
    assert "fp32" in served[("openvino", "cpu")].precisions
    assert inventory.runtimes["onnxruntime"] == importlib.metadata.version("onnxruntime")
    assert inventory.runtimes["openvino"] == importlib.metadata.version("openvino")
    assert "CPU" in inventory.openvino_devices
    resources = inventory.ray_resources()
    assert resources["paretonas/onnxruntime/cpu"] == 1.0
    assert resources["paretonas/openvino/cpu"] == 1.0
    if not inventory.gpus:
        assert "onnxruntime/cuda" in inventory.unavailable
        assert not any(name.endswith("/cuda") for name in resources)
    assert inventory.as_dict()["hostname"] == inventory.hostname


def test_targets_command_prints_inventory_and_resources(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from orchestrator.cli import main

    assert main(["targets", "--ray-resources"]) == 0
    resources = json.loads(capsys.readouterr().out)
    assert resources["paretonas/onnxruntime/cpu"] == 1.0
    assert main(["targets", "--json"]) == 0
    [node] = json.loads(capsys.readouterr().out)
    assert {"backend": "openvino", "device": "cpu"}.items() <= node["targets"][1].items()
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "paretonas/openvino/cpu" in out and "usable cores" in out
