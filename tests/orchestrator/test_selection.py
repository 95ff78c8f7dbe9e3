"""Choosing a model from a tracked front and registering it (real sqlite store)."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.errors import SelectionError
from orchestrator.selection import front, parse_where, register, select
from tests.orchestrator.conftest import TrackedSearch


def test_where_is_parsed_into_mlflow_metric_conditions() -> None:
    assert parse_where("latency_ms@cpu-openvino <= 5 AND accuracy > 0.9") == [
        ("latency_ms/cpu-openvino", "<=", 5.0), ("accuracy", ">", 0.9)]
    assert parse_where("params == 1e3") == [("params", "=", 1000.0)]
    assert parse_where(None) == [] and parse_where("  ") == []
    with pytest.raises(SelectionError, match="METRIC OP NUMBER"):
        parse_where("latency <== 1")
    with pytest.raises(SelectionError, match="METRIC OP NUMBER"):
        parse_where("accuracy > high")


@pytest.mark.slow
def test_select_picks_the_best_front_member_that_qualifies(tracked_sqlite: TrackedSearch) -> None:
    uri = tracked_sqlite.config.tracking.uri
    members = front("tracked", uri=uri)
    assert sorted(m.trial_id for m in members) == ["t1", "t3"]
    # t3's fine-tuning failed (as the search reported it); t1's did not
    assert {m.trial_id: m.finetune_error for m in members} == {
        "t1": None, "t3": "fine-tuning front subnet x failed: diverged"}
    assert select("tracked", uri=uri, maximize="accuracy").trial_id == "t3"
    best = select("tracked", uri=uri, where="latency_ms@cpu-ort <= 1.5", maximize="accuracy")
    assert best.trial_id == "t1" and best.metric("latency_ms@cpu-ort") == 1.0
    assert select("tracked", uri=uri, minimize="params").trial_id == "t1"
    with pytest.raises(SelectionError, match="none of the 2 front members"):
        select("tracked", uri=uri, where="accuracy > 0.99", maximize="accuracy")
    with pytest.raises(SelectionError, match="unknown metric 'speed'"):
        select("tracked", uri=uri, maximize="speed")
    with pytest.raises(SelectionError, match="exactly one of"):
        select("tracked", uri=uri, maximize="accuracy", minimize="params")
    with pytest.raises(SelectionError, match="no MLflow experiment 'nope'"):
        front("nope", uri=uri)


@pytest.mark.slow
def test_register_tags_the_version_and_moves_the_alias(tracked_sqlite: TrackedSearch) -> None:
    uri = tracked_sqlite.config.tracking.uri
    first = register(select("tracked", uri=uri, maximize="accuracy"), name="picked", uri=uri,
                     alias="champion")
    second = register(select("tracked", uri=uri, minimize="params"), name="picked", uri=uri,
                      alias="champion")
    client = MlflowClient(uri, registry_uri=uri)
    assert (str(first.version), str(second.version)) == ("1", "2")
    champion = client.get_model_version_by_alias("picked", "champion")
    assert str(champion.version) == "2"
    assert champion.tags["paretonas.trial_id"] == "t1"
    assert champion.tags["latency_ms/cpu-ort"] == "1" and champion.tags["accuracy"] == "0.9"
    assert champion.tags["targets"] == "cpu-openvino,cpu-ort"


@pytest.mark.slow
def test_the_cli_says_which_front_models_were_not_fine_tuned(
        tracked_sqlite: TrackedSearch, capsys: pytest.CaptureFixture[str]) -> None:
    uri = tracked_sqlite.config.tracking.uri
    assert main(["front", "tracked", "--uri", uri]) == 0
    out = capsys.readouterr().out
    assert "fine-tuned" in out
    rows = [line for line in out.splitlines() if line.rstrip(" │").endswith("failed")]
    assert len(rows) == 1 and "0.95" in rows[0]  # t3, not t1
    assert main(["select", "tracked", "--uri", uri, "--maximize", "accuracy"]) == 0
    out = capsys.readouterr().out
    assert "warning: its model keeps inherited weights: fine-tuning front subnet x failed" in out
    assert main(["select", "tracked", "--uri", uri, "--minimize", "params"]) == 0  # t1
    assert "warning" not in capsys.readouterr().out
