"""Weight-sharing mode end to end: supernet trial, batched subnet trials, real pool, MLflow."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from evaluators.errors import CheckpointError
from orchestrator.cli import main
from orchestrator.config import load_config, parse_config
from orchestrator.errors import ConfigError
from orchestrator.objectives import Objective, ObjectiveSet
from orchestrator.searchers.random_search import RandomSearcher
from orchestrator.tracking import MlflowTracker
from orchestrator.tune_driver import run_search
from orchestrator.weight_sharing import BatchSearcherAdapter, elastic_space
from search_spaces import InputSpec
from tests.conftest import ROOT
from tests.elastic_fixtures import TINY_OPTIONS, one_thread, tiny_space

_one_thread = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture
def ws_config(tiny_config: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(tiny_config)
    config.update(
        mode="weight_sharing",
        space={"name": "elastic-mobilenet-v3", "options": copy.deepcopy(TINY_OPTIONS)},
        supernet={"steps": 16, "batch_size": 32, "checkpoint_every": 8, "log_every": 4,
                  "random_subnets": 1, "eval_samples": 100, "calibration_batches": 1,
                  "calibration_batch_size": 32, "subnets_per_trial": 3},
        budget={"candidates": 7},
        objectives={"accuracy": "max", "latency_ms@cpu-ort": "min"},
        searcher={"name": "nsga2", "options": {"population_size": 4}},
    )
    return config


def test_weight_sharing_needs_an_elastic_space(ws_config: dict[str, Any]) -> None:
    ws_config["space"] = {"name": "conv-classifier"}
    with pytest.raises(ConfigError, match="mode: weight_sharing needs an elastic space"):
        parse_config(ws_config)


@pytest.mark.parametrize("name", ["weight_sharing.yaml", "weight_sharing_gpu_cluster.yaml"])
def test_shipped_configs_are_valid_and_their_subnets_run(name: str) -> None:
    config = load_config(ROOT / "configs" / name)
    assert config.mode == "weight_sharing" and config.supernet.checkpoint is None
    space = elastic_space(config, InputSpec(shape=(1, 28, 28), num_classes=10))
    with torch.no_grad():
        assert space.build(space.smallest())(space.example_input(2)).shape == (2, 10)


@pytest.mark.slow
@pytest.mark.integration
def test_a_weight_sharing_search_reaches_the_tracker(ws_config: dict[str, Any], tmp_path: Path,
                                                     ray_local: None,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = parse_config(ws_config)
    tracker = MlflowTracker(uri=config.tracking.uri, experiment=config.tracking.experiment)
    result = run_search(config, tracker=tracker)

    assert len(result.records) == 7 and all(r.ok for r in result.records), \
        [r.error for r in result.records]
    assert len({r.trial_id for r in result.records}) == 7
    for record in result.records:
        assert 0.0 <= record.metrics["accuracy"] <= 1.0
        assert record.metrics["latency_ms@cpu-ort"] > 0 and record.metrics["latency_ms@cpu-openvino"] > 0
        assert {"time_extract_s", "time_calibrate_s", "time_measure_s"} <= set(record.metrics)
    front = result.summary.front
    assert front and all(r.onnx_path and Path(r.onnx_path).is_file() for r in front)

    client = MlflowClient(tracking_uri=config.tracking.uri)
    parent = client.get_run(result.run_id)
    assert [m.step for m in client.get_metric_history(result.run_id, "supernet_loss_largest")] == \
        [4, 8, 12, 16]
    assert [a.path for a in client.list_artifacts(result.run_id, "supernet")] == ["supernet/tiny.pt"]
    assert parent.data.metrics["candidates"] == 7
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(children) == 7
    on_front = [c for c in children if c.data.tags.get("paretonas.pareto_front") == "true"]
    assert len(on_front) == len(front)
    assert sorted(a.path for a in client.list_artifacts(result.run_id, "front")) == \
        sorted(f"front/{r.arch.key}.onnx" for r in front)

    # A second search reuses the trained supernet; one for other space options is refused.
    checkpoint = Path(config.output_dir, "supernet", "tiny.pt")
    ws_config["supernet"]["checkpoint"] = str(checkpoint)
    ws_config["space"]["options"]["kernel_sizes"] = [3]
    with pytest.raises(CheckpointError, match=r"dimension stage1\.block1\.kernel_size allows \[3\]"):
        run_search(parse_config(ws_config), tracker=MlflowTracker(uri=config.tracking.uri,
                                                                  experiment="again"))

    # The CLI trains (here: finds finished) the supernet of a config on its own.
    ws_config["space"]["options"]["kernel_sizes"] = TINY_OPTIONS["kernel_sizes"]
    path = tmp_path / "ws.yaml"
    path.write_text(yaml.safe_dump(ws_config))
    assert main(["supernet", "train", str(path)]) == 0
    out = capsys.readouterr().out
    assert "trained to step 16" in out and f"supernet.checkpoint={checkpoint}" in out


class _Recording(RandomSearcher):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.told: list[tuple[str, list[float]]] = []
        self.failed: list[tuple[str, str]] = []

    def tell(self, arch: Any, *, objectives: Any, violation: float = 0.0) -> None:
        self.told.append((arch.key, list(objectives)))

    def tell_failure(self, arch: Any, reason: str) -> None:
        self.failed.append((arch.key, reason))


def test_the_batch_adapter_tells_each_subnet_as_it_streams_in() -> None:
    space = tiny_space()
    searcher = _Recording(space=space, seed=0)
    objectives = ObjectiveSet(objectives=(Objective("accuracy", "max"),))
    adapter = BatchSearcherAdapter(searcher, objectives, batch_size=3, budget=5)
    first, second = adapter.suggest("t1"), adapter.suggest("t2")
    assert len(first["archs"]) == 3 and len(second["archs"]) == 2  # cut to the budget
    keys = [space.architecture(values).key for values in first["archs"]]
    adapter.on_trial_result("t1", {"arch_key": keys[0], "accuracy": 0.5})
    assert searcher.told == [(keys[0], [-0.5])]  # before the trial completes
    adapter.on_trial_result("t1", {"arch_key": keys[1], "error": "ExportError: boom"})
    adapter.on_trial_complete("t1", error=True)
    assert searcher.failed == [(keys[1], "ExportError: boom"), (keys[2], "trial failed")]
