"""Config parsing: valid files load; bad ones fail naming the YAML path and the choices."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from evaluators.timing import TimingSettings
from orchestrator.config import load_config, parse_config, parse_override
from orchestrator.errors import ConfigError
from tests.conftest import ROOT, TINY_CONFIG


def _with(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(TINY_CONFIG)
    config.update(changes)
    return config


def test_every_shipped_config_is_valid() -> None:
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        assert load_config(path).targets


def test_quickstart_meets_its_promise() -> None:
    config = load_config(ROOT / "configs" / "quickstart.yaml")
    assert config.budget.candidates >= 24
    assert {t.backend for t in config.targets} == {"onnxruntime", "openvino"}
    assert config.tracking.uri == "sqlite:///mlflow.db"
    assert [o.direction for o in config.objective_set().objectives] == ["max", "min", "min", "min"]


def test_defaults_fill_in() -> None:
    config = parse_config(_with())
    assert config.training.epochs == 1
    assert config.timing.max_runs == TimingSettings.max_runs
    assert config.targets[0].target().cores == (-1,)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"budjet": {}}, "unknown key(s) ['budjet']; allowed:"),
        ({"budget": {"candidates": 0}}, "budget.candidates: Input should be greater than or equal to 1"),
        ({"targets": [{"name": "x", "backend": "tensorflow"}]},
         "targets.0: unknown backend 'tensorflow'; known: onnxruntime, openvino"),
        ({"targets": [{"name": "x", "backend": "openvino", "precision": "fp64"}]},
         "targets.0.precision: Input should be 'fp32', 'fp16', 'bf16' or 'int8'"),
        ({"objectives": {"accuracy": "maximise"}}, "objectives.accuracy: Input should be 'min' or 'max'"),
        ({"objectives": {"latency_ms@gpu": "min"}}, "objectives.latency_ms@gpu: unknown metric; known:"),
        ({"searcher": {"name": "bayes"}}, "searcher: unknown searcher 'bayes'; known:"),
        ({"searcher": {"name": "nsga2", "options": {"pop": 3}}},
         "searcher.options: searcher 'nsga2' has no option(s) ['pop']; accepted: archive_size,"),
        ({"objectives": {"accuracy": "max"}},
         "searcher.options: searcher 'nsga2' needs at least 2 objectives, got 1"),
        ({"space": {"name": "resnet"}},
         "space: unknown search space 'resnet'; known: conv-classifier, elastic-mobilenet-v3, mlp"),
        ({"space": {"name": "no_such_module:Space"}},
         "space: cannot import search space module 'no_such_module'"),
        ({"dataset": {"name": "imagenet"}}, "dataset: unknown dataset 'imagenet'; known: digits"),
        ({"constraints": {"accuracy": {}}}, "constraints.accuracy: give at least one of min, max"),
        ({"targets": [{"name": "x", "backend": "openvino", "cores": [0, -1]}]},
         "targets.0: cores must be all >= 0 or all negative"),
        ({"targets": [{"name": "a", "backend": "openvino"}, {"name": "a", "backend": "openvino"}]},
         "duplicate target name(s) ['a']"),
        ({"timing": {"rel_ci": 1.5}}, "timing: TimingSettings.rel_ci must be a number in (0, 1)"),
        ({"scheduler": {"name": "hyperband"}},
         "scheduler.name: Input should be 'fifo' or 'pareto-halving'"),
        ({"scheduler": {"name": "pareto-halving", "reduction_factor": 1}},
         "scheduler.reduction_factor: Input should be greater than or equal to 2"),
        ({"scheduler": {"name": "pareto-halving"}},  # TINY_CONFIG trains 1 epoch
         "scheduler.min_epochs: 1 leaves no rung before training.epochs 1"),
        ({"scheduler": {"name": "pareto-halving"}, "training": {"epochs": 3},
          "objectives": {"accuracy@cpu-ort": "max", "latency_ms@cpu-ort": "min"}},
         "accuracy@cpu-ort (the compiled model's accuracy) cannot be used with it; use fifo"),
        ({"training": {"device": "tpu"}}, "training.device: String should match pattern"),
        ({"training": {"device": "cuda"}},
         "training.device: cuda needs budget.trial_gpus > 0, so that Ray gives each trial a GPU"),
    ],
)
def test_bad_values_name_the_path(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(_with(**changes), source="bad.yaml")
    assert expected in str(raised.value)
    assert str(raised.value).startswith("bad.yaml: invalid configuration")


def test_training_on_a_gpu_reaches_the_trials_with_their_gpus() -> None:
    config = parse_config(_with(training={"device": "cuda:1"}, budget={"trial_gpus": 0.5}))
    assert config.training.settings(seed=3).device == "cuda:1"
    assert config.budget.trial_resource_request()["gpu"] == 0.5


def test_halving_rungs_are_the_geometric_series_below_the_epochs() -> None:
    config = parse_config(_with(training={"epochs": 10},
                                scheduler={"name": "pareto-halving", "reduction_factor": 3}))
    assert config.scheduler.rungs(10) == (1, 3, 9)
    assert config.scheduler.rungs(9) == (1, 3)
    assert parse_config(_with()).scheduler.rungs(10) == ()  # fifo stops nothing


def test_missing_required_section() -> None:
    config = _with()
    del config["space"]
    with pytest.raises(ConfigError, match="space: Field required"):
        parse_config(config)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(scalar)


def test_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(TINY_CONFIG))
    config = load_config(path, overrides=dict([parse_override("budget.candidates=9"),
                                               parse_override("searcher.name=random"),
                                               parse_override("searcher.options={}")]))
    assert config.budget.candidates == 9
    assert config.searcher.name == "random"
    with pytest.raises(ConfigError, match="must look like"):
        parse_override("budget.candidates")


def test_constraints_become_violations() -> None:
    config = parse_config(_with(constraints={"latency_ms@cpu-ort": {"max": 2.0}}))
    objectives = config.objective_set()
    metrics = {"accuracy": 0.9, "latency_ms@cpu-ort": 3.0, "params": 100.0}
    assert objectives.vector(metrics) == [-0.9, 3.0, 100.0]
    assert objectives.violation(metrics) == pytest.approx(0.5)
    assert objectives.violation({**metrics, "latency_ms@cpu-ort": 1.5}) == 0.0
