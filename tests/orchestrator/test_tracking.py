"""MLflow tracking against a real sqlite store: parent run, child runs, front tags, CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.config import parse_config
from orchestrator.errors import TrackingError
from orchestrator.front import summarise_front
from orchestrator.records import TrialRecord
from orchestrator.tracking import FRONT_TAG, MlflowTracker
from search_spaces import Architecture


def _records(onnx: Path) -> list[TrialRecord]:
    arch = lambda i: Architecture.from_dict("conv-classifier", {"stage1.width": i})  # noqa: E731
    return [
        TrialRecord("a", arch(8), "completed",
                    {"accuracy": 0.9, "latency_ms@cpu-ort": 1.0, "params": 10.0},
                    wall_seconds=1.5, onnx_path=str(onnx)),
        TrialRecord("b", arch(16), "completed",
                    {"accuracy": 0.8, "latency_ms@cpu-ort": 2.0, "params": 20.0}),
        TrialRecord("c", arch(24), "failed", error="ExportError: candidate x: boom"),
    ]


@pytest.mark.slow
def test_search_is_recorded_as_parent_and_children(tiny_config: dict, tmp_path: Path) -> None:
    config = parse_config(tiny_config)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx-bytes")
    tracker = MlflowTracker(uri=config.tracking.uri, experiment="unit")
    parent = tracker.start_search(config)
    records = _records(onnx)
    for record in records:
        tracker.log_trial(record)
    tracker.finish_search(records, summarise_front(records, config.objective_set()))
    tracker.end_search("FINISHED")

    client = MlflowClient(tracking_uri=config.tracking.uri)
    experiment = client.get_experiment_by_name("unit")
    runs = client.search_runs([experiment.experiment_id])
    children = {r.data.tags["paretonas.trial_id"]: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent}
    assert set(children) == {"a", "b", "c"}
    assert children["a"].data.metrics["latency_ms/cpu-ort"] == 1.0
    assert children["a"].data.params["stage1.width"] == "8"
    assert children["a"].data.tags[FRONT_TAG] == "true"
    assert children["b"].data.tags[FRONT_TAG] == "false"
    assert children["c"].info.status == "FAILED"
    assert "boom" in children["c"].data.tags["paretonas.error"]
    assert [f.path for f in client.list_artifacts(children["a"].info.run_id, "model")] == [
        "model/m.onnx"]

    parent_run = client.get_run(parent)
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.metrics["front_size"] == 1
    assert parent_run.data.metrics["failed"] == 1
    assert parent_run.data.params["objectives.latency_ms/cpu-ort"] == "min"
    front = client.download_artifacts(parent, "pareto_front.csv", str(tmp_path))
    rows = list(csv.DictReader(io.StringIO(Path(front).read_text())))
    assert [row["run_id"] for row in rows] == [children["a"].info.run_id]


def test_logging_before_start_is_refused(tmp_path: Path) -> None:
    tracker = MlflowTracker(uri=f"sqlite:///{tmp_path / 'x.db'}", experiment="unit")
    with pytest.raises(TrackingError, match="start_search"):
        tracker.log_trial(_records(tmp_path / "m.onnx")[1])
