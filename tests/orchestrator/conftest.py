"""Shared tracking fixtures: a search tracked into a real sqlite store, a real ``mlflow server``."""

from __future__ import annotations

import copy
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import torch
from mlflow.tracking import MlflowClient

from evaluators.export import export_onnx
from orchestrator.config import SearchConfig, parse_config
from orchestrator.front import summarise_front
from orchestrator.ray_session import environment
from orchestrator.records import TrialRecord
from orchestrator.tracking import FRONT_TAG, MlflowTracker
from orchestrator.tune_driver import Progress, SearchResult, run_search
from search_spaces import Architecture
from tests.conftest import TINY_CONFIG
from tests.evaluators.models import tiny_conv_net


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """A real ``mlflow server`` (sqlite backend, artifact root in ``root``) that can be
    stopped and started again on the same port and store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        mlflow = Path(sys.executable).parent / "mlflow"
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
             "--artifacts-destination", str(self.root / "artifacts")],
            stdout=log, stderr=log,
        )
        deadline = time.monotonic() + 300  # seconds on a quiet machine; minutes on a loaded one
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start (exit code {self.process.poll()}); "
                                f"see {self.root / 'server.log'}")
                time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real tracking server for the session's server tests."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class TrackedSearch:
    """A search tracked with synthetic records (real ONNX files) into a real store."""

    config: SearchConfig
    parent_run_id: str
    records: list[TrialRecord]
    onnx: Path
    output_dir: Path
    front_tags_after_each_step: list[dict[str, str]]


RESULTS = [  # (accuracy, latency on cpu-ort, params): t1 dominates t0; t2 is dominated
    (0.80, 2.0, 20.0), (0.90, 1.0, 10.0), (0.70, 3.0, 30.0), (0.95, 4.0, 40.0),
]


def synthetic_records(onnx: Path) -> list[TrialRecord]:
    records = []
    for index, (accuracy, latency, params) in enumerate(RESULTS):
        records.append(TrialRecord(
            f"t{index}", Architecture.from_dict("conv-classifier", {"stage1.width": 8 * (index + 1)}),
            "completed", {"accuracy": accuracy, "latency_ms@cpu-ort": latency,
                          "latency_ms@cpu-openvino": 2 * latency, "params": params},
            wall_seconds=1.0, started_at=time.time(), onnx_path=str(onnx)))
    records.append(TrialRecord(
        "t9", Architecture.from_dict("conv-classifier", {"stage1.width": 99}), "failed",
        error="CandidateError: candidate abc failed in export: boom"))
    return records


def track_search(tmp: Path, uri: str, experiment: str) -> TrackedSearch:
    """Drive a ``MlflowTracker`` like the driver does; note the front tags after each step."""
    data: dict[str, Any] = copy.deepcopy(TINY_CONFIG)
    data["tracking"] = {"uri": uri, "experiment": experiment}
    data["output_dir"] = str(tmp / "results")
    config = parse_config(data)
    onnx = export_onnx(tiny_conv_net(), example_input=torch.zeros(1, 1, 8, 8), path=tmp / "m.onnx",
                       candidate="tiny")
    tracker = MlflowTracker.from_config(config)
    parent = tracker.start_search(config)
    client = MlflowClient(uri)
    done: list[TrialRecord] = []
    tags_per_step = []
    for record in synthetic_records(onnx):
        done.append(record)
        tracker.log_trial(record)
        tracker.update_front(summarise_front(done, config.objective_set()))
        assert tracker._writer is not None and tracker._writer.flush(60)
        children = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                                      filter_string=f"tags.mlflow.parentRunId = '{parent}'")
        tags_per_step.append({r.data.tags["paretonas.trial_id"]: r.data.tags["paretonas.pareto_front"]
                              for r in children})
    # as a confirmation pass would: t0 (off the front) re-timed, its search-time value kept
    done[0] = replace(done[0], metrics={**done[0].metrics, "latency_ms@cpu-ort": 2.5,
                                        "latency_search_ms@cpu-ort": 2.0})
    # as a failed fine-tuning of front member t3 would report it
    tracker.finish_search(done, summarise_front(done, config.objective_set()),
                          finetune_errors={"t3": "fine-tuning front subnet x failed: diverged"})
    tracker.end_search("FINISHED")
    assert tracker.unsynced == 0
    return TrackedSearch(config, parent, done, onnx, Path(config.output_dir), tags_per_step)


@pytest.fixture(scope="session")
def tracked_sqlite(tmp_path_factory: pytest.TempPathFactory) -> TrackedSearch:
    tmp = tmp_path_factory.mktemp("tracked-sqlite")
    return track_search(tmp, f"sqlite:///{tmp / 'mlflow.db'}", "tracked")


@dataclass(frozen=True)
class ServerSearch:
    config: SearchConfig
    result: SearchResult
    live_front_tags: list[dict[str, str]]  # trial id -> front tag, read while the search ran


def search_config(tmp: Path, server: MlflowServer, experiment: str, **tracking: Any) -> SearchConfig:
    data = copy.deepcopy(TINY_CONFIG)
    data["tracking"] = {"uri": server.url, "experiment": experiment, **tracking}
    data["output_dir"] = str(tmp / "results")
    return parse_config(data)


def children_of(uri: str, parent: str) -> list[Any]:
    client = MlflowClient(uri)
    run = client.get_run(parent)
    return client.search_runs([run.info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent}'")


@pytest.fixture(scope="session")
def server_search(mlflow_server: MlflowServer,
                  tmp_path_factory: pytest.TempPathFactory) -> ServerSearch:
    """A tiny real search (Ray Tune, training, ORT + OpenVINO) tracked by the server."""
    config = search_config(tmp_path_factory.mktemp("server-search"), mlflow_server, "server-search")
    tracker = MlflowTracker.from_config(config)
    live: list[dict[str, str]] = []

    def on_progress(update: Progress) -> None:
        if update.done == 3 and tracker.parent_run_id and tracker._writer is not None:
            tracker._writer.flush(30)
            live.append({r.data.tags["paretonas.trial_id"]: r.data.tags[FRONT_TAG]
                         for r in children_of(mlflow_server.url, tracker.parent_run_id)})

    with own_ray():
        result = run_search(config, tracker=tracker, on_progress=on_progress)
    assert tracker.unsynced == 0
    return ServerSearch(config, result, live)


@contextmanager
def own_ray() -> Iterator[None]:
    """Start a fresh embedded Ray even if someone's `ray start` cluster runs on this machine
    (``ray.init()`` without an address would join it)."""
    with environment(RAY_ADDRESS="local"):
        yield
