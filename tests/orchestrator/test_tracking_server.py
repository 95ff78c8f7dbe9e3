"""The tracker against a real ``mlflow server`` over HTTP (the cluster set-up)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.config import parse_config
from orchestrator.front import summarise_front
from orchestrator.records import TrialRecord
from orchestrator.tracking import FRONT_TAG, MlflowTracker
from search_spaces import Architecture

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    process = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start (exit code {process.poll()})")
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_tracker_writes_to_a_real_server(mlflow_server: str, tiny_config: dict,
                                         tmp_path: Path) -> None:
    config = parse_config({**tiny_config, "tracking": {"uri": mlflow_server, "experiment": "srv"}})
    onnx = tmp_path / "front.onnx"
    onnx.write_bytes(b"model")
    records = [
        TrialRecord("a", Architecture.from_dict("s", {"w": 8}), "completed",
                    {"accuracy": 0.9, "latency_ms@cpu-ort": 1.0, "params": 5.0}, onnx_path=str(onnx)),
        TrialRecord("b", Architecture.from_dict("s", {"w": 16}), "failed", error="CompileError: x"),
    ]
    tracker = MlflowTracker(uri=config.tracking.uri, experiment="srv")
    parent = tracker.start_search(config)
    for record in records:
        tracker.log_trial(record)
    tracker.finish_search(records, summarise_front(records, config.objective_set()))
    tracker.end_search("FINISHED")

    client = MlflowClient(tracking_uri=mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("srv").experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    by_trial = {run.data.tags["paretonas.trial_id"]: run for run in runs}
    assert set(by_trial) == {"a", "b"}
    assert by_trial["a"].data.tags[FRONT_TAG] == "true"
    assert by_trial["b"].info.status == "FAILED"
    front_runs = client.search_runs([by_trial["a"].info.experiment_id],
                                    filter_string=f"tags.`{FRONT_TAG}` = 'true'")
    assert [run.info.run_id for run in front_runs] == [by_trial["a"].info.run_id]
    downloaded = client.download_artifacts(by_trial["a"].info.run_id, "model/front.onnx",
                                           str(tmp_path / "down"))
    assert Path(downloaded).read_bytes() == b"model"
