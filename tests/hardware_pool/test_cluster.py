"""Placement on a real multi-node Ray cluster (``ray.cluster_utils.Cluster``).

The head offers ONNX Runtime only; the worker offers ONNX Runtime and OpenVINO
(``ray start --resources`` on a real cluster). Each target's actors run where its
resource is, and ``ort``'s two replicas share its requests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray
import torch
from torch import nn

from evaluators.export import export_onnx
from evaluators.timing import TimingSettings
from hardware_pool import Target, TargetUnavailableError
from hardware_pool.discovery import cluster_inventory, resource_name
from hardware_pool.pool import HardwarePool
from hardware_pool.worker import MeasureRequest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TIMING = TimingSettings(warmup_runs=1, min_runs=5, min_seconds=0.0, max_seconds=0.0)
ORT, OV = resource_name("onnxruntime", "cpu"), resource_name("openvino", "cpu")


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[str, str]]:
    """(head node id, worker node id) of a two-node cluster this process is connected to."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "resources": {ORT: 1}, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=2, resources={ORT: 1, OV: 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    try:
        yield cluster.head_node.node_id, worker.node_id
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_each_target_runs_where_its_resource_is(nodes: tuple[str, str],
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    head, worker = nodes
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    export_onnx(nn.Sequential(nn.Flatten(), nn.Linear(16, 4)).eval(),
                example_input=torch.randn(1, 16), path=path, candidate="tiny")
    targets = [Target(name="ort", backend="onnxruntime"), Target(name="ov", backend="openvino")]
    with HardwarePool(targets, timing=TIMING) as pool:
        placed = {(tuple(d["targets"]), d["node"]) for d in pool.describe()}  # type: ignore[arg-type]
        assert placed == {(("ort",), head), (("ort", "ov"), worker)}
        client = pool.client()
        measured = [client.measure("ort", MeasureRequest(f"m{i}", path.read_bytes(), (16,)))
                    for i in range(2)]
        ov = client.measure("ov", MeasureRequest("m0", path.read_bytes(), (16,)))
    assert {m.provenance.node for m in measured if m.provenance} == {head, worker}  # balanced
    assert ov.provenance is not None and ov.provenance.node == worker


def test_a_target_no_node_offers_fails_at_start_naming_its_resource(
    nodes: tuple[str, str],
) -> None:
    with pytest.raises(TargetUnavailableError,
                       match=r"target 'x' cannot be measured on any node: .*does not offer Ray "
                             r"resource 'paretonas/testing/cpu'.*ray start --resources"):
        HardwarePool([Target(name="x", backend="testing")], timing=TIMING,
                     plugins=("tests.hardware_pool.plugin_backends",)).start()


def test_targets_lists_every_node(nodes: tuple[str, str]) -> None:
    inventories = cluster_inventory()
    assert {inventory.node_id for inventory in inventories} == set(nodes)
    assert all(OV in inventory.ray_resources() for inventory in inventories)  # one machine
