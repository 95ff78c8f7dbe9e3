"""A real search tracked by a real ``mlflow server``: layout, live tags, models, registry, outage."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.journal import Journal
from orchestrator.tracking import FRONT_TAG, MlflowTracker
from orchestrator.tune_driver import Progress, run_search
from tests.orchestrator.conftest import (
    MlflowServer,
    ServerSearch,
    children_of,
    own_ray,
    search_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_search_is_in_mlflow_with_live_tags_models_and_plots(server_search: ServerSearch,
                                                             tmp_path: Path) -> None:
    uri, result = server_search.config.tracking.uri, server_search.result
    client = MlflowClient(uri)
    children = {r.data.tags["paretonas.trial_id"]: r for r in children_of(uri, result.run_id)}
    assert sorted(children) == sorted(r.trial_id for r in result.records)
    front_ids = {r.trial_id for r in result.summary.front}
    assert len(server_search.live_front_tags) == 1 and len(server_search.live_front_tags[0]) == 3
    assert "true" in server_search.live_front_tags[0].values()  # tagged while the search ran
    for trial_id, run in children.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags[FRONT_TAG] == str(trial_id in front_ids).lower()
        assert run.data.metrics["latency_ms/cpu-openvino"] > 0
        assert (run.data.metrics["pareto_rank"] == 0) == (trial_id in front_ids)
    parent = client.get_run(result.run_id)
    assert parent.data.metrics["front_size"] == len(front_ids)
    # one step per candidate, then the front after the confirmation pass re-timed it
    assert result.confirmation is not None
    assert len(client.get_metric_history(result.run_id, "hypervolume")) == 4 + 1
    assert {a.path for a in client.list_artifacts(result.run_id, "plots")} == {
        "plots/accuracy_vs_latency.png", "plots/hypervolume.png", "plots/front.html"}
    png = client.download_artifacts(result.run_id, "plots/accuracy_vs_latency.png", str(tmp_path))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    member = children[sorted(front_ids)[0]]
    html = client.download_artifacts(member.info.run_id, "plots/front.html", str(tmp_path))
    text = Path(html).read_text()
    assert "<svg" in text and member.data.tags["paretonas.arch_key"] in text
    page = client.download_artifacts(result.run_id, "plots/front.html", str(tmp_path / "parent"))
    text = Path(page).read_text()
    assert "plotly" in text and all(r.arch.key in text for r in result.records)  # hover texts
    assert "paretonas.model_id" in member.data.tags
    assert mlflow_experiment_kind(client, parent.info.experiment_id) == "custom_model_development"


def mlflow_experiment_kind(client: MlflowClient, experiment_id: str) -> str | None:
    return client.get_experiment(experiment_id).tags.get("mlflow.experimentKind")


def test_select_registers_a_model_that_predicts_like_onnx_runtime(
        server_search: ServerSearch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = server_search.config.tracking.uri
    assert main(["front", "server-search", "--uri", uri]) == 0
    assert f"({len(server_search.result.summary.front)} members)" in capsys.readouterr().out
    assert main(["select", "server-search", "--uri", uri, "--where", "latency_ms@cpu-ort <= 1000",
                 "--maximize", "accuracy", "--register", "tiny-cnn", "--alias", "champion"]) == 0
    out = capsys.readouterr().out
    assert "registered 'tiny-cnn' version 1 alias 'champion'" in out
    best = max(server_search.result.summary.front, key=lambda r: r.metrics["accuracy"])
    client = MlflowClient(uri, registry_uri=uri)
    version = client.get_model_version_by_alias("tiny-cnn", "champion")
    assert version.tags["paretonas.arch_key"] == best.arch.key
    assert float(version.tags["accuracy"]) == pytest.approx(best.metrics["accuracy"], rel=1e-5)

    run = client.get_run(version.run_id)
    onnx = client.download_artifacts(version.run_id, f"model/{best.arch.key}.onnx", str(tmp_path))
    batch = np.random.default_rng(7).standard_normal((1, 1, 8, 8)).astype(np.float32)
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: batch})[0]
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model("models:/tiny-cnn@champion")
        predicted = next(iter(model.predict(batch).values()))
    finally:
        mlflow.set_tracking_uri(None)
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)
    assert run.data.tags[FRONT_TAG] == "true"


def test_server_down_mid_search_loses_nothing(mlflow_server: MlflowServer, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Stop the server after the 2nd candidate; the search finishes; restart; sync: all once."""
    config = search_config(tmp_path, mlflow_server, "outage", drain_timeout_s=1.0)
    tracker = MlflowTracker.from_config(config)

    def on_progress(update: Progress) -> None:
        if update.done == 2:
            assert tracker._writer is not None and tracker._writer.flush(30)
            mlflow_server.stop()

    try:
        with own_ray():
            result = run_search(config, tracker=tracker, on_progress=on_progress)
    finally:
        mlflow_server.start()
    assert len(result.records) == 4
    assert tracker.unsynced > 0
    journal = Journal(output_dir=config.output_dir)
    kinds = {e["kind"] for e in journal.unsynced()}
    assert {"trial", "finish", "end"} <= kinds

    assert main(["sync", config.output_dir]) == 0
    assert "sent" in capsys.readouterr().out
    assert main(["sync", config.output_dir]) == 0
    assert "already has everything" in capsys.readouterr().out
    children = children_of(config.tracking.uri, result.run_id)
    trial_ids = [run.data.tags["paretonas.trial_id"] for run in children]
    assert sorted(trial_ids) == sorted(r.trial_id for r in result.records)  # each exactly once
    front_ids = {r.trial_id for r in result.summary.front}
    assert {r.data.tags["paretonas.trial_id"] for r in children
            if r.data.tags[FRONT_TAG] == "true"} == front_ids
    client = MlflowClient(config.tracking.uri)
    assert client.get_run(result.run_id).info.status == "FINISHED"
    models = client.search_logged_models([children[0].info.experiment_id])
    logged = [m.tags["paretonas.trial_id"] for m in models]
    assert len(logged) == len(set(logged)) and front_ids <= set(logged)
    assert json.loads(journal.path.read_text().splitlines()[0])["kind"] == "search"
