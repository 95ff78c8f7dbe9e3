"""MLflow tracking of a search: journal first, then MLflow from a background writer.

The driver calls ``start_search``, then ``log_trial`` and ``update_front`` as each
candidate ends (O(1) work each: one fsync'd journal line and a queue put),
``finish_search`` and ``end_search``. A background writer sends the entries to
MLflow in batches; while the server is unreachable they wait in the journal
(``<output_dir>/tracking-journal.jsonl``) and ``paretonas sync OUTPUT_DIR``
sends them later. Runs are found by their trial id before they are created, so
nothing is written twice.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from orchestrator.config import SearchConfig
from orchestrator.confirmation import SEARCH_LATENCY
from orchestrator.errors import TrackingError
from orchestrator.front import FrontSummary
from orchestrator.journal import Entry, Journal, trial_entry
from orchestrator.mlflow_sink import (
    FRONT_TAG,
    MlflowSink,
    front_csv,
    is_remote,
    mlflow_key,
    server_reachable,
)
from orchestrator.pareto import non_dominated_sort
from orchestrator.provenance import search_environment
from orchestrator.records import TrialRecord
from orchestrator.tracking_writer import BackgroundWriter

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["FRONT_TAG", "MlflowTracker", "Tracker", "check_cluster_tracking", "check_server",
           "front_csv", "mlflow_key", "sync"]

logger = logging.getLogger(__name__)


class Tracker(Protocol):
    """Where a search's results go. ``log_trial`` and ``update_front`` run as each candidate ends."""

    def start_search(self, config: SearchConfig, *, resume: bool = False) -> str | None: ...

    def log_trial(self, record: TrialRecord) -> None: ...

    def update_front(self, summary: FrontSummary) -> None: ...

    def finish_search(self, records: Sequence[TrialRecord], summary: FrontSummary, *,
                      finetune_errors: Mapping[str, str] | None = None) -> None: ...

    def end_search(self, status: str) -> None: ...


def check_server(uri: str) -> None:
    """Raise ``TrackingError`` within seconds if the tracking server at ``uri`` does not answer."""
    reason = server_reachable(uri)
    if reason is not None:
        raise TrackingError(
            f"MLflow tracking server {uri} is not reachable ({reason}); start it "
            f"(mlflow server --host ... --port ...) or point tracking.uri / MLFLOW_TRACKING_URI "
            f"at a running one")


def check_cluster_tracking(uri: str, *, nodes: int, address: str | None) -> None:
    """A local store (sqlite file, directory) cannot serve a remote or multi-node Ray cluster."""
    remote_cluster = bool(address) and str(address).startswith("ray://")
    if not is_remote(uri) and (nodes > 1 or remote_cluster):
        where = "a remote Ray cluster" if remote_cluster else f"a Ray cluster of {nodes} nodes"
        raise TrackingError(
            f"tracking.uri {uri} is a local store, which {where} cannot share; run "
            f"`mlflow server --backend-store-uri sqlite:///mlflow.db --artifacts-destination "
            f"./mlartifacts --host 0.0.0.0` and set tracking.uri (or MLFLOW_TRACKING_URI) to "
            f"http://<host>:5000")


class MlflowTracker:
    """Tracks into the MLflow store at ``uri`` (``sqlite:///mlflow.db``, ``http://host:5000``).

    ``start_search(config, resume=True)`` continues the last search of the same name in
    ``config.output_dir``'s journal: same parent run, trials already recorded are skipped.
    """

    def __init__(self, *, uri: str, experiment: str, log_models: bool = True,
                 drain_timeout_s: float = 30.0, batch_size: int = 64) -> None:
        if not uri or not experiment:
            raise ValueError("MlflowTracker needs a tracking uri and an experiment name")
        if drain_timeout_s < 0:
            raise ValueError(f"drain_timeout_s must be >= 0, got {drain_timeout_s}")
        self.uri = uri
        self.experiment = experiment
        self.log_models = log_models
        self.drain_timeout_s = drain_timeout_s
        self.batch_size = batch_size
        self.journal: Journal | None = None
        self.search_id: str | None = None
        self.parent_run_id: str | None = None
        self.unsynced = 0  # entries MLflow had not accepted when the search ended
        self._writer: BackgroundWriter | None = None
        self._config: SearchConfig | None = None
        self._seen: set[str] = set()
        self._failed = 0
        self._history: list[tuple[int, float]] = []

    @classmethod
    def from_config(cls, config: SearchConfig) -> MlflowTracker:
        return cls(uri=config.tracking.uri, experiment=config.tracking.experiment,
                   log_models=config.tracking.log_models,
                   drain_timeout_s=config.tracking.drain_timeout_s)

    @property
    def experiment_id(self) -> str | None:
        if self._writer is None or self.search_id is None:
            return None
        return self._writer.sink.experiments.get(self.search_id)

    def ui_url(self, base: str = "http://127.0.0.1:5000") -> str | None:
        """The experiment's runs in MLflow's model-training view (``base``: the UI's address)."""
        if self.experiment_id is None:
            return None
        root = self.uri if is_remote(self.uri) else base
        return f"{root.rstrip('/')}/#/experiments/{self.experiment_id}?workflowType=machine_learning"

    @property
    def plots_dir(self) -> Path | None:
        """Where ``finish_search`` wrote this search's plots and front CSV."""
        if self.journal is None or self.search_id is None:
            return None
        return self.journal.output_dir / "plots" / self.search_id

    def start_search(self, config: SearchConfig, *, resume: bool = False) -> str:
        """Create (or, with ``resume``, reopen) the parent run; fail fast if MLflow is down."""
        if is_remote(self.uri):
            # The writer retries on its own schedule; MLflow's client would block minutes.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        check_server(self.uri)
        self._config = config
        journal = Journal(output_dir=config.output_dir)
        sink = MlflowSink(uri=self.uri, journal=journal)
        self.journal = journal
        if resume:
            first = self._resume(journal, sink, config)
        else:
            self.search_id = uuid.uuid4().hex
            first = [journal.append({
                "kind": "search", "search_id": self.search_id, "uri": self.uri,
                "experiment": self.experiment, "log_models": self.log_models,
                "run_name": f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                "name": config.name, "config": config.model_dump(mode="json"),
                "environment": search_environment(config), "time": time.time(),
            })]
        try:
            for done in sink.apply(first):
                journal.append({"kind": "synced", "seqs": done})
            assert self.search_id is not None
            self.parent_run_id = sink.parent_run_id(self.search_id)
        except TrackingError:
            raise
        except Exception as error:
            raise TrackingError(f"cannot start the search's MLflow run at {self.uri}: "
                                f"{type(error).__name__}: {error}") from error
        self._writer = BackgroundWriter(sink=sink, journal=journal, batch_size=self.batch_size)
        return self.parent_run_id

    def log_trial(self, record: TrialRecord) -> None:
        journal, writer, search_id = self._started()
        if record.trial_id in self._seen:  # a resumed search reports restored trials again
            return
        self._seen.add(record.trial_id)
        self._failed += not record.ok
        model = None
        if record.onnx_path and Path(record.onnx_path).is_file():
            model = journal.store_model(record.trial_id, record.arch.key, record.onnx_path)
        writer.submit(journal.append(trial_entry(search_id, record, model)))

    def update_front(self, summary: FrontSummary) -> None:
        """The front after the latest candidate: search metrics at this step, live front tags."""
        journal, writer, search_id = self._started()
        step = len(self._seen)
        self._history.append((step, summary.hypervolume))
        writer.submit(journal.append({
            "kind": "front", "search_id": search_id, "step": step, "time": time.time(),
            "front": [r.trial_id for r in summary.front], "front_size": len(summary.front),
            "hypervolume": summary.hypervolume, "candidates": step, "failed": self._failed,
            "feasible": summary.feasible,
        }))

    def finish_search(self, records: Sequence[TrialRecord], summary: FrontSummary, *,
                      finetune_errors: Mapping[str, str] | None = None) -> None:
        """Final front, ``pareto_rank`` of every candidate, the front CSV and the plots;
        ``finetune_errors`` (trial id -> cause) tag the front members that kept their
        inherited weights (``paretonas.finetune_error``)."""
        from orchestrator import plots

        journal, writer, search_id = self._started()
        assert self._config is not None and self.plots_dir is not None
        config = self._config
        targets = [target.name for target in config.targets]
        front_ids = {r.trial_id for r in summary.front}
        out = self.plots_dir
        completed = [r for r in records if r.ok]
        made = [
            plots.front_png(out / "accuracy_vs_latency.png", completed, front_ids, targets),
            plots.hypervolume_png(out / "hypervolume.png", self._history),
            plots.front_html(out / "front.html", completed, front_ids, targets),
        ]
        run_plots = plots.run_pages(out / "runs", completed, front_ids, targets, summary.front)
        (out / "pareto_front.csv").write_text(front_csv(summary))
        writer.submit(journal.append({
            "kind": "finish", "search_id": search_id, "time": time.time(),
            "front": [r.trial_id for r in summary.front], "ranks": pareto_ranks(completed, config),
            # final metrics of the front and of every record the confirmation pass
            # re-timed (also those it then left off the front)
            "metrics": {r.trial_id: r.metrics for r in completed
                        if r.trial_id in front_ids or _confirmed(r)},
            "hypervolume": summary.hypervolume, "reference": list(summary.reference),
            "feasible": summary.feasible, "finetune_errors": dict(finetune_errors or {}),
            "plots": [str(p.relative_to(journal.output_dir)) for p in made],
            "run_plots": {t: str(p.relative_to(journal.output_dir)) for t, p in run_plots.items()},
        }))

    def log_supernet(self, history: Sequence[dict[str, float]], checkpoint: Path) -> None:
        """Weight-sharing mode: the supernet's loss curve (by step) and its checkpoint on the
        search's run (once per search, written directly rather than through the queue)."""
        from mlflow.entities import Metric

        client, parent_run_id = self._parent_client()
        now = int(time.time() * 1000)
        metrics = [Metric(f"supernet_{name}", float(value), now, int(entry["step"]))
                   for entry in history for name, value in entry.items() if name != "step"]
        for start in range(0, len(metrics), 1000):  # MLflow's per-batch limit
            client.log_batch(parent_run_id, metrics=metrics[start:start + 1000])
        client.log_artifact(parent_run_id, str(checkpoint), artifact_path="supernet")

    def log_onnx_models(self, records: Sequence[TrialRecord]) -> None:
        """ONNX models exported after the search (weight-sharing mode's front), as artifacts
        ``front/<arch key>.onnx`` of the search's run."""
        if not self.log_models:
            return
        client, parent_run_id = self._parent_client()
        for record in records:
            if record.onnx_path:
                client.log_artifact(parent_run_id, record.onnx_path, artifact_path="front")

    def _parent_client(self) -> tuple[MlflowClient, str]:
        from mlflow.tracking import MlflowClient

        self._started()
        assert self.parent_run_id is not None  # set by start_search
        return MlflowClient(tracking_uri=self.uri), self.parent_run_id

    def end_search(self, status: str) -> None:
        """Close the parent run; wait up to ``drain_timeout_s`` for MLflow to take everything."""
        if self._writer is None or self.journal is None:
            return
        self._writer.submit(self.journal.append({
            "kind": "end", "search_id": self.search_id, "status": status, "time": time.time()}))
        self.unsynced = self._writer.close(self.drain_timeout_s)
        if self.unsynced:
            logger.warning("MLflow at %s has not taken %d journal entries (%s); they are kept in "
                           "%s: run `paretonas sync %s` when it is back", self.uri, self.unsynced,
                           self._writer.last_error, self.journal.path, self.journal.output_dir)

    def _resume(self, journal: Journal, sink: MlflowSink, config: SearchConfig) -> list[Entry]:
        entries = journal.entries()
        searches = [e for e in entries if e["kind"] == "search" and e["name"] == config.name]
        if not searches:
            raise TrackingError(f"nothing to resume: {journal.path} has no search named "
                                f"{config.name!r}; run it without resuming")
        self.search_id = searches[-1]["search_id"]
        for entry in entries:
            sink.observe(entry)
            if entry["kind"] == "trial" and entry["search_id"] == self.search_id:
                self._seen.add(entry["trial_id"])
                self._failed += entry["status"] != "completed"
            elif entry["kind"] == "front" and entry["search_id"] == self.search_id:
                self._history.append((entry["step"], entry["hypervolume"]))
        reopen = journal.append({"kind": "end", "search_id": self.search_id, "status": "RUNNING",
                                 "time": time.time()})
        return [*journal.unsynced()[:-1], reopen]  # earlier leftovers first, then reopen the run

    def _started(self) -> tuple[Journal, BackgroundWriter, str]:
        if self.journal is None or self._writer is None or self.search_id is None:
            raise TrackingError("MlflowTracker: call start_search() before logging trials")
        return self.journal, self._writer, self.search_id


def pareto_ranks(records: Sequence[TrialRecord], config: SearchConfig) -> dict[str, int]:
    """Non-dominated sorting rank (0 = the front) of each completed record."""
    if not records:
        return {}
    objectives = config.objective_set()
    points = np.array([objectives.vector(r.metrics) for r in records], dtype=float)
    violations = np.array([objectives.violation(r.metrics) for r in records], dtype=float)
    ranks: dict[str, int] = {}
    for rank, members in enumerate(non_dominated_sort(points, violations)):
        for index in members:
            ranks[records[int(index)].trial_id] = rank
    return ranks


def sync(output_dir: str | Path, *, uri: str | None = None) -> int:
    """Send the journal's entries MLflow has not taken; return how many were sent.

    Safe to run any number of times, also while nothing is missing.
    """
    journal = Journal(output_dir=output_dir)
    if not journal.path.exists():
        raise TrackingError(f"no tracking journal in {journal.output_dir}: give the search's "
                            f"output_dir (where {journal.path.name} is)")
    entries = journal.entries()
    pending = journal.unsynced()
    if not pending:
        return 0
    uris = {e["search_id"]: uri or e["uri"] for e in entries if e["kind"] == "search"}
    sinks: dict[str, MlflowSink] = {}
    for target in sorted(set(uris.values())):
        if is_remote(target):
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        check_server(target)
        sinks[target] = MlflowSink(uri=target, journal=journal)
    for entry in entries:
        if entry["kind"] in ("search", "trial", "front"):
            sinks[uris[entry["search_id"]]].observe(entry)
    sent = 0
    for target, sink in sinks.items():
        mine = [e for e in pending if uris[e["search_id"]] == target]
        try:
            for done in sink.apply(mine):
                journal.append({"kind": "synced", "seqs": done})
                sent += len(done)
        except TrackingError:
            raise
        except Exception as error:
            raise TrackingError(f"MLflow at {target} refused a journal entry: "
                                f"{type(error).__name__}: {error}; nothing is lost, run sync "
                                f"again once it is fixed") from error
    return sent


def _confirmed(record: TrialRecord) -> bool:
    """Whether the confirmation pass re-timed ``record`` (it kept a search-time latency)."""
    return any(name.startswith(f"{SEARCH_LATENCY}@") for name in record.metrics)
