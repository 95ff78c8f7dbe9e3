"""Tracking against a real sqlite store: layout, live front tags, models, journal, replay, resume."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.config import parse_config
from orchestrator.errors import TrackingError
from orchestrator.journal import Journal
from orchestrator.mlflow_sink import EXPERIMENT_KIND_TAG, FINETUNE_ERROR_TAG, MlflowSink
from orchestrator.records import TrialRecord
from orchestrator.tracking import FRONT_TAG, MlflowTracker, check_cluster_tracking, sync
from orchestrator.tracking_writer import BackgroundWriter
from search_spaces import Architecture
from tests.conftest import TINY_CONFIG
from tests.orchestrator.conftest import TrackedSearch, free_port


def _children(search: TrackedSearch) -> dict[str, list]:
    client = MlflowClient(search.config.tracking.uri)
    experiment = client.get_experiment_by_name(search.config.tracking.experiment)
    by_trial: dict[str, list] = {}
    for run in client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{search.parent_run_id}'"):
        by_trial.setdefault(run.data.tags["paretonas.trial_id"], []).append(run)
    return by_trial


@pytest.mark.slow
def test_experiment_and_parent_run_layout(tracked_sqlite: TrackedSearch, tmp_path: Path) -> None:
    client = MlflowClient(tracked_sqlite.config.tracking.uri)
    experiment = client.get_experiment_by_name("tracked")
    assert experiment.tags[EXPERIMENT_KIND_TAG[0]] == "custom_model_development"
    parent = client.get_run(tracked_sqlite.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["objectives.latency_ms/cpu-ort"] == "min"
    assert parent.data.params["env.runtimes.mlflow"] == mlflow.__version__
    assert parent.data.params["env.node.cpus"].isdigit()
    assert parent.data.params["env.targets.cpu-openvino.backend"] == "openvino"
    history = client.get_metric_history(parent.info.run_id, "front_size")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (1, 1), (2, 1), (3, 1), (4, 2), (5, 2)]
    assert len(client.get_metric_history(parent.info.run_id, "hypervolume")) == 5
    assert parent.data.metrics["failed"] == 1
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert artifacts == {"plots/accuracy_vs_latency.png", "plots/hypervolume.png", "plots/front.html"}
    front = client.download_artifacts(parent.info.run_id, "pareto_front.csv", str(tmp_path))
    rows = list(csv.DictReader(io.StringIO(Path(front).read_text())))
    children = _children(tracked_sqlite)
    assert {row["run_id"] for row in rows} == {children["t1"][0].info.run_id,
                                               children["t3"][0].info.run_id}


@pytest.mark.slow
def test_front_tags_follow_the_search(tracked_sqlite: TrackedSearch) -> None:
    steps = tracked_sqlite.front_tags_after_each_step
    assert steps[0] == {"t0": "true"}
    assert steps[1] == {"t0": "false", "t1": "true"}  # t1 dominates t0: t0 loses its tag
    assert steps[2] == {"t0": "false", "t1": "true", "t2": "false"}
    assert steps[3]["t3"] == "true" and steps[3]["t1"] == "true"
    children = _children(tracked_sqlite)
    assert all(len(runs) == 1 for runs in children.values())
    tags = {trial: runs[0].data.tags for trial, runs in children.items()}
    assert {t for t, tag in tags.items() if tag[FRONT_TAG] == "true"} == {"t1", "t3"}
    ranks = {t: runs[0].data.metrics.get("pareto_rank") for t, runs in children.items()}
    assert ranks == {"t0": 1.0, "t1": 0.0, "t2": 2.0, "t3": 0.0, "t9": None}
    failed = children["t9"][0]
    assert failed.info.status == "FAILED"
    assert tags["t9"]["paretonas.failure_stage"] == "export"
    assert "boom" in tags["t9"]["paretonas.error"]
    # the front member whose fine-tuning failed says so; the others carry no such tag
    assert tags["t3"][FINETUNE_ERROR_TAG] == "fine-tuning front subnet x failed: diverged"
    assert [t for t, tag in tags.items() if FINETUNE_ERROR_TAG in tag] == ["t3"]
    assert children["t1"][0].data.metrics["latency_ms/cpu-ort"] == 1.0
    # re-timed by the confirmation pass though off the front: MLflow shows the confirmed value
    assert children["t0"][0].data.metrics["latency_ms/cpu-ort"] == 2.5
    assert children["t0"][0].data.metrics["latency_search_ms/cpu-ort"] == 2.0
    assert children["t1"][0].data.params["stage1.width"] == "16"


@pytest.mark.slow
def test_front_members_are_mlflow_onnx_models(tracked_sqlite: TrackedSearch) -> None:
    uri = tracked_sqlite.config.tracking.uri
    client = MlflowClient(uri)
    run = _children(tracked_sqlite)["t1"][0]
    model_id = run.data.tags["paretonas.model_id"]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == {"plots/front.html"}
    session = onnxruntime.InferenceSession(str(tracked_sqlite.onnx), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(3).standard_normal((1, 1, 8, 8)).astype(np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: batch})[0]
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        info = mlflow.models.get_model_info(f"models:/{model_id}")
        assert info.signature is not None and info.saved_input_example_info is not None
        onnx_model = mlflow.onnx.load_model(f"models:/{model_id}")
        predicted = mlflow.pyfunc.load_model(f"models:/{model_id}").predict(batch)
    assert onnx_model.graph.input[0].name == session.get_inputs()[0].name
    np.testing.assert_allclose(next(iter(predicted.values())), expected, rtol=1e-6)


@pytest.mark.slow
def test_replay_and_resume_write_nothing_twice(tracked_sqlite: TrackedSearch) -> None:
    journal = Journal(output_dir=tracked_sqlite.output_dir)
    assert sync(tracked_sqlite.output_dir) == 0  # nothing missing
    # As if the process died before recording what MLflow had taken: all is replayed.
    lines = journal.path.read_text().splitlines()
    journal.path.write_text("".join(line + "\n" for line in lines
                                    if json.loads(line)["kind"] != "synced"))
    pending = len(journal.unsynced())
    assert pending > 5 and sync(tracked_sqlite.output_dir) == pending
    assert journal.unsynced() == []
    children = _children(tracked_sqlite)
    assert sorted(children) == ["t0", "t1", "t2", "t3", "t9"]
    assert all(len(runs) == 1 for runs in children.values())
    client = MlflowClient(tracked_sqlite.config.tracking.uri)
    experiment_id = children["t1"][0].info.experiment_id
    models = client.search_logged_models([experiment_id])
    assert sorted(m.tags["paretonas.trial_id"] for m in models) == ["t0", "t1", "t3"]

    tracker = MlflowTracker.from_config(tracked_sqlite.config)
    assert tracker.start_search(tracked_sqlite.config, resume=True) == tracked_sqlite.parent_run_id
    assert client.get_run(tracked_sqlite.parent_run_id).info.status == "RUNNING"
    tracker.log_trial(tracked_sqlite.records[1])  # a restored trial reported again: skipped
    extra = TrialRecord("t10", Architecture.from_dict("conv-classifier", {"stage1.width": 5}),
                        "failed", error="CandidateError: candidate x failed in train: nan")
    tracker.log_trial(extra)
    tracker.end_search("FINISHED")
    children = _children(tracked_sqlite)
    assert sorted(children) == ["t0", "t1", "t10", "t2", "t3", "t9"]
    assert all(len(runs) == 1 for runs in children.values())
    assert client.get_run(tracked_sqlite.parent_run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_a_late_replay_logs_only_the_current_fronts_models(tracked_sqlite: TrackedSearch,
                                                           tmp_path: Path) -> None:
    # The whole journal replayed at once (a writer far behind, or `paretonas sync` after an
    # outage) into a fresh store: t0 was on the front only at step 1, so it gets no model.
    copy = tmp_path / "results"
    shutil.copytree(tracked_sqlite.output_dir, copy)
    journal = copy / "tracking-journal.jsonl"
    journal.write_text("".join(line + "\n" for line in journal.read_text().splitlines()
                               if json.loads(line)["kind"] not in ("synced", "rejected")))
    uri = f"sqlite:///{tmp_path / 'replayed.db'}"
    assert sync(copy, uri=uri) > 5
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.`paretonas.kind` = 'candidate'")
    tags = {r.data.tags["paretonas.trial_id"]: r.data.tags for r in runs}
    assert {t for t, tag in tags.items() if tag[FRONT_TAG] == "true"} == {"t1", "t3"}
    models = client.search_logged_models([experiment.experiment_id])
    assert sorted(m.tags["paretonas.trial_id"] for m in models) == ["t1", "t3"]
    parent = client.search_runs([experiment.experiment_id],
                                filter_string="tags.`paretonas.kind` = 'search'")[0]
    assert len(client.get_metric_history(parent.info.run_id, "front_size")) == 5


def test_server_down_at_start_is_one_clear_error(tmp_path: Path) -> None:
    data = {**TINY_CONFIG, "output_dir": str(tmp_path / "out")}
    config = parse_config(data)
    tracker = MlflowTracker(uri=f"http://127.0.0.1:{free_port()}", experiment="x")
    started = time.monotonic()
    with pytest.raises(TrackingError, match="is not reachable .*start it"):
        tracker.start_search(config)
    assert time.monotonic() - started < 30  # one quick probe, not MLflow's minutes of retries
    assert not (tmp_path / "out").exists()


def test_writer_keeps_entries_while_the_server_is_down(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    journal = Journal(output_dir=tmp_path)
    sink = MlflowSink(uri=f"http://127.0.0.1:{free_port()}", journal=journal)
    writer = BackgroundWriter(sink=sink, journal=journal, batch_size=2, linger_s=0.0,
                              max_backoff_s=0.2)
    writer.submit(journal.append({"kind": "search", "search_id": "s", "experiment": "x",
                                  "config": {}, "environment": {}, "run_name": "r"}))
    for index in range(2):
        writer.submit(journal.append({"kind": "end", "search_id": "s", "status": "FINISHED",
                                      "time": float(index)}))
    assert not writer.flush(1.0)
    assert writer.close(0.5) == 3
    assert writer.last_error is not None and "Connection" in writer.last_error
    assert [e["seq"] for e in journal.unsynced()] == [0, 1, 2]


def test_journal_survives_a_torn_last_line(tmp_path: Path) -> None:
    journal = Journal(output_dir=tmp_path)
    journal.append({"kind": "end", "search_id": "s", "status": "FINISHED", "time": 0.0})
    with open(journal.path, "a") as handle:
        handle.write('{"kind": "tri')  # the process died mid-write
    assert [e["seq"] for e in Journal(output_dir=tmp_path).entries()] == [0]
    with pytest.raises(TrackingError, match="kind"):
        journal.append({"kind": "nonsense"})


def test_logging_before_start_is_refused() -> None:
    tracker = MlflowTracker(uri="sqlite:///unused.db", experiment="unit")
    record = TrialRecord("a", Architecture.from_dict("s", {"w": 1}), "failed", error="x")
    with pytest.raises(TrackingError, match="start_search"):
        tracker.log_trial(record)


def test_clusters_need_a_tracking_server() -> None:
    with pytest.raises(TrackingError, match="cluster of 3 nodes cannot share.*mlflow server"):
        check_cluster_tracking("sqlite:///mlflow.db", nodes=3, address="auto")
    with pytest.raises(TrackingError, match="remote Ray cluster"):
        check_cluster_tracking("file:///tmp/mlruns", nodes=1, address="ray://head:10001")
    check_cluster_tracking("http://mlflow:5000", nodes=3, address="ray://head:10001")
    check_cluster_tracking("sqlite:///mlflow.db", nodes=1, address=None)


def test_tracking_uri_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert parse_config(TINY_CONFIG).tracking.uri == "http://tracking:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert parse_config(TINY_CONFIG).tracking.uri == "sqlite:///mlflow.db"


def test_sync_needs_the_search_output_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.cli import main

    assert main(["sync", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no tracking journal in" in err and "output_dir" in err and "Traceback" not in err
