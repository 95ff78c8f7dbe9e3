"""MLflow tracking: a parent run per search, a child run per candidate, the front tagged.

Only the driver writes (through ``MlflowClient``, no global active run), so an
embedded sqlite store is safe however many trials run at once.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from typing import Any, Protocol

import yaml

from orchestrator.config import SearchConfig
from orchestrator.errors import TrackingError
from orchestrator.front import FrontSummary
from orchestrator.records import TrialRecord

FRONT_TAG = "paretonas.pareto_front"


class Tracker(Protocol):
    """Where a search's results go. ``log_trial`` is called as each candidate ends."""

    def start_search(self, config: SearchConfig) -> str | None: ...

    def log_trial(self, record: TrialRecord) -> None: ...

    def finish_search(self, records: Sequence[TrialRecord], summary: FrontSummary) -> None: ...

    def end_search(self, status: str) -> None: ...


def mlflow_key(name: str) -> str:
    """MLflow forbids '@' in names: ``latency_ms@cpu-ort`` is logged as ``latency_ms/cpu-ort``."""
    return name.replace("@", "/")


class MlflowTracker:
    """Tracks into the MLflow store at ``uri`` (``sqlite:///mlflow.db``, ``http://host:5000``)."""

    def __init__(self, *, uri: str, experiment: str, log_models: bool = True) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.experiment = experiment
        self.log_models = log_models
        self.client = MlflowClient(tracking_uri=uri)
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None
        self.child_runs: dict[str, str] = {}  # trial id -> run id

    def start_search(self, config: SearchConfig) -> str:
        try:
            found = self.client.get_experiment_by_name(self.experiment)
            self.experiment_id = (
                found.experiment_id if found else self.client.create_experiment(self.experiment)
            )
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                tags={"paretonas.kind": "search", "paretonas.space": config.space.name},
            )
        except Exception as error:
            raise TrackingError(f"cannot start an MLflow run at {self.uri}: {error}") from error
        run_id: str = run.info.run_id
        self.parent_run_id = run_id
        self._log_params(run_id, _flatten(config.model_dump(mode="json")))
        self.client.log_text(run_id, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False),
                             "config.yaml")
        return run_id

    def log_trial(self, record: TrialRecord) -> None:
        from mlflow.entities import Metric

        experiment_id, parent_run_id = self._started()
        tags = {
            "mlflow.parentRunId": parent_run_id,
            "paretonas.kind": "candidate",
            "paretonas.arch_key": record.arch.key,
            "paretonas.trial_id": record.trial_id,
            "paretonas.status": record.status,
            "paretonas.arch": json.dumps(record.arch.as_dict(), sort_keys=True),
        }
        if record.error:
            tags["paretonas.error"] = record.error[:5000]
        run = self.client.create_run(experiment_id, run_name=record.arch.key, tags=tags)
        run_id = run.info.run_id
        self.child_runs[record.trial_id] = run_id
        self._log_params(run_id, {str(k): v for k, v in record.arch.as_dict().items()})
        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_key(k), v, now, 0) for k, v in record.metrics.items()]
        metrics.append(Metric("trial_wall_s", record.wall_seconds, now, 0))
        self.client.log_batch(run_id, metrics=metrics)
        if self.log_models and record.onnx_path:
            self.client.log_artifact(run_id, record.onnx_path, artifact_path="model")
        self.client.set_terminated(run_id, "FINISHED" if record.ok else "FAILED")

    def finish_search(self, records: Sequence[TrialRecord], summary: FrontSummary) -> None:
        from mlflow.entities import Metric

        _, parent_run_id = self._started()
        front_ids = {record.trial_id for record in summary.front}
        for record in records:
            run_id = self.child_runs.get(record.trial_id)
            if run_id is not None:
                self.client.set_tag(run_id, FRONT_TAG, str(record.trial_id in front_ids).lower())
        self.client.log_text(parent_run_id, front_csv(summary, self.child_runs),
                             "pareto_front.csv")
        now = int(time.time() * 1000)
        values = {
            "hypervolume": summary.hypervolume,
            "front_size": len(summary.front),
            "candidates": len(records),
            "failed": sum(not r.ok for r in records),
            "feasible": summary.feasible,
        }
        self.client.log_batch(parent_run_id,
                              metrics=[Metric(k, float(v), now, 0) for k, v in values.items()])

    def end_search(self, status: str) -> None:
        if self.parent_run_id is not None:
            self.client.set_terminated(self.parent_run_id, status)

    def _started(self) -> tuple[str, str]:
        """(experiment id, parent run id) of the search in progress."""
        if self.parent_run_id is None or self.experiment_id is None:
            raise TrackingError("MlflowTracker: call start_search() before logging trials")
        return self.experiment_id, self.parent_run_id

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(mlflow_key(k)[:250], str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow's per-batch limit
            self.client.log_batch(run_id, params=items[start:start + 100])


def front_csv(summary: FrontSummary, run_ids: dict[str, str] | None = None) -> str:
    """The front as CSV: arch key, MLflow run id, every metric, every choice value."""
    metric_names = sorted({name for r in summary.front for name in r.metrics})
    choice_names = sorted({name for r in summary.front for name in r.arch.as_dict()})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["arch_key", "run_id", *metric_names, *choice_names])
    for record in summary.front:
        arch = record.arch.as_dict()
        writer.writerow([
            record.arch.key, (run_ids or {}).get(record.trial_id, ""),
            *(record.metrics.get(name, "") for name in metric_names),
            *(arch.get(name, "") for name in choice_names),
        ])
    return buffer.getvalue()


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(data, list):
        if all(isinstance(item, dict) and "name" in item for item in data):
            out = {}
            for item in data:
                out.update(_flatten(item, f"{prefix}{item['name']}."))
            return out
        return {prefix.rstrip("."): json.dumps(data)}
    return {prefix.rstrip("."): data}
