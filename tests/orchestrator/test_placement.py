"""Config-level placement on a multi-node cluster (``ray.cluster_utils.Cluster``)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from ray.tune import ExperimentAnalysis

from orchestrator.config import SearchConfig, parse_config
from orchestrator.errors import TrackingError
from orchestrator.front import FrontSummary
from orchestrator.records import TrialRecord
from orchestrator.tune_driver import run_search
from tests.conftest import TINY_CONFIG

pytestmark = [pytest.mark.slow, pytest.mark.integration]


class ListTracker:
    """A tracker that keeps records in memory (a multi-node cluster refuses a local sqlite store)."""

    def __init__(self) -> None:
        self.records: list[TrialRecord] = []

    def start_search(self, config: SearchConfig, *, resume: bool = False) -> str | None:
        return None

    def log_trial(self, record: TrialRecord) -> None:
        self.records.append(record)

    def update_front(self, summary: FrontSummary) -> None:
        pass

    def finish_search(self, records: Sequence[TrialRecord], summary: FrontSummary, *,
                      finetune_errors: Mapping[str, str] | None = None) -> None:
        pass

    def end_search(self, status: str) -> None:
        pass


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[tuple[str, str]]:
    """A head without the trainer resource and a worker node that has it."""
    from ray.cluster_utils import Cluster

    from hardware_pool.discovery import probe_node

    # The head serves the hardware pool's targets; only the worker node may train.
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 2, "resources": probe_node().ray_resources()})
    try:
        trainer = cluster.add_node(num_cpus=1, resources={"paretonas/trainer": 2})
        cluster.wait_for_nodes()
        yield cluster.address, trainer.node_id
    finally:
        cluster.shutdown()


def _config(tmp_path: Path, address: str, **changes: Any) -> SearchConfig:
    config = copy.deepcopy(TINY_CONFIG)
    config.pop("ray")
    config["ray"] = {"address": address}
    config["targets"] = [{"name": "cpu-ort", "backend": "onnxruntime"}]
    config["objectives"] = {"accuracy": "max", "latency_ms@cpu-ort": "min"}
    config["searcher"] = {"name": "random"}
    config["budget"] = {"candidates": 2, "trial_resources": {"paretonas/trainer": 1}}
    config["tracking"] = {"uri": "http://127.0.0.1:5000", "experiment": "placement"}
    config["output_dir"] = str(tmp_path / "results")
    config.update(changes)
    return parse_config(config)


def test_trials_run_on_the_nodes_with_their_resource(two_nodes: tuple[str, str],
                                                     tmp_path: Path) -> None:
    address, trainer_node = two_nodes
    config = _config(tmp_path, address)
    tracker = ListTracker()
    result = run_search(config, tracker=tracker)

    assert len(tracker.records) == 2 and all(r.ok for r in tracker.records)
    trials = ExperimentAnalysis(result.experiment_dir).trials
    assert len(trials) == 2
    assert {trial.last_result["node_id"] for trial in trials} == {trainer_node}


def test_local_sqlite_store_on_a_multi_node_cluster_is_refused(two_nodes: tuple[str, str],
                                                                tmp_path: Path) -> None:
    config = _config(tmp_path, two_nodes[0],
                     tracking={"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "x"})
    with pytest.raises(TrackingError, match="is a local store, which a Ray cluster of 2 nodes"):
        run_search(config, tracker=ListTracker())
