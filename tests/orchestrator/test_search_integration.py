"""A real search: local Ray Tune trials, real training, ORT + OpenVINO timing, sqlite MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.config import parse_config
from orchestrator.errors import SearchError
from orchestrator.mlflow_sink import TRIAL_TAG
from orchestrator.tracking import FRONT_TAG, MlflowTracker
from orchestrator.tune_driver import Progress, run_search

pytestmark = [pytest.mark.slow, pytest.mark.integration]

BROKEN_SPACE = '''
from torch import nn
from search_spaces import Categorical, SearchSpace


class Exploding(nn.Module):
    """Trains and validates either way, but raises while being exported unless ``ok``."""

    def __init__(self, ok: bool) -> None:
        super().__init__()
        self.ok = ok
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        out = self.body(x)
        if not self.ok and not self.training and x.shape[0] == 1:
            raise RuntimeError("this candidate cannot be traced")
        return out


class HalfBroken(SearchSpace):
    def choices(self):
        return [Categorical("ok", (True, False)), Categorical("bias", (True, False))]

    def build(self, arch):
        return Exploding(bool(arch["ok"]))
'''


def _children(config: Any, run_id: str) -> list[Any]:
    client = MlflowClient(tracking_uri=config.tracking.uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    return [run for run in client.search_runs([experiment.experiment_id])
            if run.data.tags.get("mlflow.parentRunId") == run_id]


def test_search_end_to_end(tiny_config: dict[str, Any]) -> None:
    # torch eager as a third runtime: the candidate exports its PyTorch program as well
    tiny_config["targets"].append({"name": "cpu-torch", "backend": "torch-eager", "cores": [-1]})
    config = parse_config(tiny_config)
    updates: list[Progress] = []
    tracker = MlflowTracker(uri=config.tracking.uri, experiment=config.tracking.experiment)
    result = run_search(config, tracker=tracker, on_progress=updates.append)

    assert len(result.records) == 4 and all(r.ok for r in result.records)
    assert len({r.arch.key for r in result.records}) == 4
    assert [u.done for u in updates] == [1, 2, 3, 4]
    for record in result.records:
        assert 0.0 < record.metrics["accuracy"] <= 1.0
        assert record.metrics["latency_ms@cpu-ort"] > 0
        assert record.metrics["latency_ms@cpu-openvino"] > 0
        assert record.metrics["latency_ms@cpu-torch"] > 0
        assert record.metrics["runs@cpu-ort"] >= 5
        assert record.metrics["params"] > 0
    assert 1 <= len(result.summary.front) <= 4 and result.summary.hypervolume > 0
    # the final front was re-timed round-robin with 3x the timing budget (min_runs too)
    confirmation = result.confirmation
    assert confirmation is not None and not confirmation.error
    front_ids = {r.trial_id for r in result.summary.front}
    assert set(confirmation.front_after) == front_ids <= set(confirmation.confirmed)
    assert set(confirmation.median_change) == {t.name for t in config.targets}
    for record in result.summary.front:
        for target in ("cpu-ort", "cpu-openvino"):
            assert record.metrics[f"latency_search_ms@{target}"] > 0
            assert record.metrics[f"runs@{target}"] >= 3 * 5
            assert (record.metrics[f"latency_ci_low_ms@{target}"]
                    <= record.metrics[f"latency_ms@{target}"]
                    <= record.metrics[f"latency_ci_high_ms@{target}"])
    confirmed = {r.trial_id: r for r in result.records if r.trial_id in confirmation.confirmed}
    assert all("latency_search_ms@cpu-ort" not in r.metrics for r in result.records
               if r.trial_id not in confirmed)

    children = _children(config, result.run_id)
    assert len(children) == 4
    front_keys = {r.arch.key for r in result.summary.front}
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags[FRONT_TAG] == str(run.data.tags["paretonas.arch_key"] in front_keys
                                                ).lower()
        assert run.data.metrics["latency_ms/cpu-openvino"] > 0
        record = confirmed.get(run.data.tags[TRIAL_TAG])
        if record is not None:
            # re-timed (on the final front or not): MLflow's latest value is its confirmed one
            assert run.data.metrics["latency_ms/cpu-ort"] == record.metrics["latency_ms@cpu-ort"]
            assert (run.data.metrics["latency_search_ms/cpu-ort"]
                    == record.metrics["latency_search_ms@cpu-ort"])
        artifacts = MlflowClient(config.tracking.uri).list_artifacts(run.info.run_id, "model")
        assert [a.path for a in artifacts] == [f"model/{run.data.tags['paretonas.arch_key']}.onnx"]


def test_failing_candidates_are_recorded_and_search_goes_on(
    tiny_config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "half_broken_space.py").write_text(BROKEN_SPACE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # Ray workers import the space too
    tiny_config["space"] = {"name": "half_broken_space:HalfBroken"}
    tiny_config["searcher"] = {"name": "random"}
    tiny_config["budget"] = {"candidates": 4}
    config = parse_config(tiny_config)
    tracker = MlflowTracker(uri=config.tracking.uri, experiment=config.tracking.experiment)
    result = run_search(config, tracker=tracker)

    failed = [r for r in result.records if not r.ok]
    assert len(result.records) == 4
    assert failed and len(failed) < 4
    assert all(r.arch["ok"] is False for r in failed)
    assert all("failed in export" in (r.error or "") for r in failed), [r.error for r in failed]
    statuses = {run.data.tags["paretonas.arch_key"]: run.info.status
                for run in _children(config, result.run_id)}
    assert {statuses[r.arch.key] for r in failed} == {"FAILED"}


def test_cli_runs_a_tiny_config(tiny_config: dict[str, Any], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    assert main(["run", str(path), "--set", "budget.candidates=3"]) == 0
    out = capsys.readouterr().out
    assert "Pareto front" in out and "of 3 candidates" in out
    assert "front member(s) round-robin, 3x the timing budget per target" in out
    assert "mlflow ui --backend-store-uri sqlite:///" in out


def test_cli_bad_config_prints_one_clear_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("space: {name: conv-classifier}\ntargets: [{name: t, backend: tpu}]\n"
                    "objectives: {accuracy: max}\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown backend 'tpu'; known: onnxruntime, openvino" in err
    assert "Traceback" not in err
    with pytest.raises(Exception, match="unknown backend"):
        main(["--debug", "run", str(path)])


def test_all_candidates_failing_is_an_error(tiny_config: dict[str, Any], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "never_space.py").write_text(BROKEN_SPACE.replace("(True, False)),", "(False,)),", 1))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    tiny_config["space"] = {"name": "never_space:HalfBroken"}
    tiny_config["searcher"] = {"name": "random"}
    tiny_config["budget"] = {"candidates": 2}
    config = parse_config(tiny_config)
    with pytest.raises(SearchError, match="no candidate completed.*failed in export"):
        run_search(config, tracker=MlflowTracker(uri=config.tracking.uri, experiment="x"))


def test_pareto_halving_stops_candidates_at_rungs_and_keeps_them(
        tiny_config: dict[str, Any]) -> None:
    tiny_config["training"]["epochs"] = 3
    tiny_config["scheduler"] = {"name": "pareto-halving", "min_epochs": 1, "reduction_factor": 2}
    tiny_config["budget"]["candidates"] = 6
    config = parse_config(tiny_config)
    assert config.scheduler.rungs(3) == (1, 2)
    tracker = MlflowTracker(uri=config.tracking.uri, experiment=config.tracking.experiment)
    result = run_search(config, tracker=tracker)

    assert len(result.records) == 6 and all(r.ok for r in result.records)
    epochs = sorted(r.metrics["epochs"] for r in result.records)
    # The first candidate at a rung always goes on; later ones that are not in the best
    # half (non-dominated rank, then crowding) of those at the rung stop there.
    assert epochs[-1] == 3 and epochs[0] < 3, epochs
    for record in result.records:  # a stopped candidate is a whole result at its rung
        assert 0 < record.metrics["accuracy"] <= 1 and record.metrics["latency_ms@cpu-ort"] > 0
    children = _children(config, result.run_id)
    assert sorted(run.data.metrics["epochs"] for run in children) == epochs
    assert all(run.info.status == "FINISHED" for run in children)
