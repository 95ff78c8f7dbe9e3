"""Applies journal entries to MLflow, idempotently: replaying an entry changes nothing.

A search's parent run is found by its ``paretonas.search_id`` tag and a candidate's
child run by its ``paretonas.trial_id`` tag before anything is created, so a
replay after a crash or an outage never duplicates a run.
"""

from __future__ import annotations

import json
import logging
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import TrackingError
from orchestrator.front import FrontSummary
from orchestrator.journal import Entry, Journal, record_from_entry

logger = logging.getLogger(__name__)

FRONT_TAG = "paretonas.pareto_front"
SEARCH_TAG = "paretonas.search_id"
TRIAL_TAG = "paretonas.trial_id"
MODEL_TAG = "paretonas.model_id"
#: On a front member whose fine-tuning failed: the cause (its model keeps inherited weights).
FINETUNE_ERROR_TAG = "paretonas.finetune_error"
#: MLflow 3's UI opens an experiment with this tag on its model-training (runs) view.
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
#: Directory of the MLflow model's files (the logged model itself is named by its arch key).
MODEL_NAME = "model"


def mlflow_key(name: str) -> str:
    """MLflow forbids '@' in names: ``latency_ms@cpu-ort`` is logged as ``latency_ms/cpu-ort``."""
    return name.replace("@", "/")


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "databricks"))


def server_reachable(uri: str, *, timeout_s: float = 5.0) -> str | None:
    """None if the tracking store at ``uri`` answers, else why not (local stores always do)."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except OSError as error:
        return str(getattr(error, "reason", error))


class MlflowSink:
    """Writes a journal's entries to the MLflow store at ``uri``; keeps its run-id maps."""

    def __init__(self, *, uri: str, journal: Journal) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.journal = journal
        self.client = MlflowClient(tracking_uri=uri)
        self.searches: dict[str, Entry] = {}  # search id -> its search entry
        self.trials: dict[tuple[str, str], Entry] = {}  # (search id, trial id) -> trial entry
        self.parent_runs: dict[str, str] = {}  # search id -> run id
        self.experiments: dict[str, str] = {}  # search id -> experiment id
        self.child_runs: dict[tuple[str, str], str] = {}  # (search id, trial id) -> run id
        self.tagged_front: dict[str, set[str]] = {}  # search id -> trial ids tagged as front
        self.hypervolumes: dict[str, list[tuple[int, float]]] = {}

    def observe(self, entry: Entry) -> None:
        """Remember what an entry says (MLflow may already have it)."""
        kind = entry["kind"]
        if kind == "search":
            self.searches[entry["search_id"]] = entry
        elif kind == "trial":
            self.trials[(entry["search_id"], entry["trial_id"])] = entry
        elif kind == "front":
            self.hypervolumes.setdefault(entry["search_id"], []).append(
                (entry["step"], entry["hypervolume"]))

    def apply(self, entries: Sequence[Entry]) -> Iterator[list[int]]:
        """Write ``entries`` in order; yield the sequence numbers done after each group.

        Consecutive front updates of one search form a group: every step's search
        metrics are logged, the tags follow the last one. A front that a later front or
        finish entry of the same search in ``entries`` supersedes is not tagged at all, so a
        writer that has fallen behind logs the models of the current front only, not those of
        every candidate that passed through it on the way.
        """
        last_front = {e["search_id"]: i for i, e in enumerate(entries)
                      if e["kind"] in ("front", "finish")}
        index = 0
        while index < len(entries):
            entry = entries[index]
            group = [entry]
            if entry["kind"] == "front":
                while (index + len(group) < len(entries)
                       and entries[index + len(group)]["kind"] == "front"
                       and entries[index + len(group)]["search_id"] == entry["search_id"]):
                    group.append(entries[index + len(group)])
            for item in group:
                self.observe(item)
            if entry["kind"] == "front":
                self._front(group, tag=last_front[entry["search_id"]] < index + len(group))
            else:
                getattr(self, f"_{entry['kind']}")(entry)
            index += len(group)
            yield [item["seq"] for item in group]

    def parent_run_id(self, search_id: str) -> str:
        if search_id not in self.parent_runs:
            experiment_id = self._experiment_id(search_id)
            found = self._find(experiment_id, {SEARCH_TAG: search_id, "paretonas.kind": "search"})
            if found is None:
                raise TrackingError(f"no MLflow run for search {search_id}: its search entry "
                                    f"has not been written yet")
            self.parent_runs[search_id] = found
        return self.parent_runs[search_id]

    # -- one handler per entry kind -------------------------------------------------------
    def _search(self, entry: Entry) -> None:
        search_id = entry["search_id"]
        experiment_id = self._experiment_id(search_id)
        run_id = self._find(experiment_id, {SEARCH_TAG: search_id, "paretonas.kind": "search"})
        if run_id is None:
            run_id = self.client.create_run(experiment_id, run_name=entry["run_name"], tags={
                "paretonas.kind": "search", SEARCH_TAG: search_id,
                "paretonas.space": entry["config"]["space"]["name"],
                "paretonas.output_dir": str(self.journal.output_dir),
                "mlflow.note.content": _parent_note(entry),
            }).info.run_id
        self.parent_runs[search_id] = run_id
        params = {**_flatten(entry["config"]), **_flatten(entry["environment"], "env.")}
        self._log_params(run_id, params)
        self.client.log_text(run_id, yaml.safe_dump(entry["config"], sort_keys=False), "config.yaml")
        self.client.log_dict(run_id, entry["environment"], "environment.json")

    def _trial(self, entry: Entry) -> None:
        from mlflow.entities import Metric

        search_id, trial_id = entry["search_id"], entry["trial_id"]
        parent = self.parent_run_id(search_id)
        experiment_id = self._experiment_id(search_id)
        run_id = self._child(search_id, trial_id)
        if run_id is None:
            tags = {
                "mlflow.parentRunId": parent, "paretonas.kind": "candidate", SEARCH_TAG: search_id,
                TRIAL_TAG: trial_id, "paretonas.arch_key": entry["arch_key"],
                "paretonas.status": entry["status"], FRONT_TAG: "false",
                "paretonas.arch": json.dumps(entry["arch"], sort_keys=True),
            }
            if entry["error"]:
                tags["paretonas.error"] = entry["error"][:5000]
                tags["paretonas.failure_stage"] = _failure_stage(entry["error"])
            run_id = self.client.create_run(experiment_id, run_name=entry["arch_key"], tags=tags,
                                            start_time=int(entry["started_at"] * 1000) or None
                                            ).info.run_id
            self.child_runs[(search_id, trial_id)] = run_id
        self._log_params(run_id, {str(k): v for k, v in entry["arch"].items()})
        stamp = int((entry["started_at"] + entry["wall_seconds"]) * 1000)
        metrics = [Metric(mlflow_key(k), float(v), stamp, 0) for k, v in entry["metrics"].items()]
        metrics.append(Metric("trial_wall_s", float(entry["wall_seconds"]), stamp, 0))
        self.client.log_batch(run_id, metrics=metrics)
        if entry["model"]:
            self.client.log_artifact(run_id, str(self.journal.resolve(entry["model"])), "model")
        self.client.set_terminated(run_id, "FINISHED" if entry["status"] == "completed" else "FAILED",
                                   end_time=stamp)

    def _front(self, group: Sequence[Entry], *, tag: bool) -> None:
        from mlflow.entities import Metric

        search_id = group[0]["search_id"]
        parent = self.parent_run_id(search_id)
        metrics = []
        for entry in group:
            stamp = int(entry["time"] * 1000)
            for name in ("front_size", "hypervolume", "candidates", "failed", "feasible"):
                metrics.append(Metric(name, float(entry[name]), stamp, entry["step"]))
        self.client.log_batch(parent, metrics=metrics)
        if tag:
            self._tag_front(search_id, group[-1]["front"])

    def _finish(self, entry: Entry) -> None:
        from mlflow.entities import Metric

        search_id = entry["search_id"]
        parent = self.parent_run_id(search_id)
        self._tag_front(search_id, entry["front"])
        stamp = int(entry["time"] * 1000)
        for trial_id, metrics in entry.get("metrics", {}).items():
            self._update_metrics(search_id, trial_id, metrics, stamp)
        for trial_id, rank in entry["ranks"].items():
            run_id = self._child(search_id, trial_id)
            if run_id is not None:
                self.client.log_batch(run_id, metrics=[Metric("pareto_rank", float(rank), stamp, 0)],
                                      tags=[_tag("paretonas.pareto_rank", str(rank))])
        for trial_id, cause in entry.get("finetune_errors", {}).items():
            run_id = self._child(search_id, trial_id)
            if run_id is not None:  # its ONNX model is the inherited one, not fine-tuned
                self.client.set_tag(run_id, FINETUNE_ERROR_TAG, cause[:5000])
        summary = FrontSummary(
            front=tuple(record_from_entry(self.trials[(search_id, t)]) for t in entry["front"]),
            hypervolume=entry["hypervolume"], reference=tuple(entry["reference"]),
            feasible=entry["feasible"],
        )
        run_ids = {t: self._child(search_id, t) or "" for t in entry["front"]}
        self.client.log_text(parent, front_csv(summary, run_ids), "pareto_front.csv")
        for relative in entry["plots"]:
            self.client.log_artifact(parent, str(self.journal.resolve(relative)), "plots")
        for trial_id, relative in entry["run_plots"].items():
            run_id = self._child(search_id, trial_id)
            if run_id is not None:
                self.client.log_artifact(run_id, str(self.journal.resolve(relative)), "plots")

    def _end(self, entry: Entry) -> None:
        if entry["status"] == "RUNNING":  # a resumed search reopens its parent run
            self.client.update_run(self.parent_run_id(entry["search_id"]), status="RUNNING")
            return
        self.client.set_terminated(self.parent_run_id(entry["search_id"]), entry["status"],
                                   end_time=int(entry["time"] * 1000))

    # -- helpers -------------------------------------------------------------------------------
    def _update_metrics(self, search_id: str, trial_id: str, metrics: dict[str, float],
                        stamp: int) -> None:
        """Log a candidate's metrics that changed since its trial entry (e.g. re-timed by the
        confirmation pass) as step 1 of its run; the front CSV then shows them."""
        from mlflow.entities import Metric

        known, run_id = self.trials.get((search_id, trial_id)), self._child(search_id, trial_id)
        if known is None or run_id is None:
            return
        changed = {k: float(v) for k, v in metrics.items() if known["metrics"].get(k) != v}
        if changed:
            self.client.log_batch(run_id, metrics=[Metric(mlflow_key(k), v, stamp, 1)
                                                   for k, v in changed.items()])
            self.trials[(search_id, trial_id)] = {**known,
                                                  "metrics": {**known["metrics"], **changed}}

    def _experiment_id(self, search_id: str) -> str:
        if search_id not in self.experiments:
            name = self.searches[search_id]["experiment"]
            found = self.client.get_experiment_by_name(name)
            experiment_id = found.experiment_id if found else self.client.create_experiment(name)
            if found is None or found.tags.get(EXPERIMENT_KIND_TAG[0]) is None:
                self.client.set_experiment_tag(experiment_id, *EXPERIMENT_KIND_TAG)
            self.experiments[search_id] = experiment_id
        return self.experiments[search_id]

    def _child(self, search_id: str, trial_id: str) -> str | None:
        key = (search_id, trial_id)
        if key not in self.child_runs:
            found = self._find(self._experiment_id(search_id), {SEARCH_TAG: search_id,
                                                                 TRIAL_TAG: trial_id})
            if found is None:
                return None
            self.child_runs[key] = found
        return self.child_runs[key]

    def _find(self, experiment_id: str, tags: dict[str, str]) -> str | None:
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        runs = self.client.search_runs([experiment_id], filter_string=query, max_results=2)
        if len(runs) > 1:
            raise TrackingError(f"{len(runs)} MLflow runs match {query}; expected one")
        return runs[0].info.run_id if runs else None

    def _tag_front(self, search_id: str, front: Sequence[str]) -> None:
        parent = self.parent_run_id(search_id)
        if search_id not in self.tagged_front:
            runs = self.client.search_runs(
                [self._experiment_id(search_id)],
                filter_string=f"tags.`{SEARCH_TAG}` = '{search_id}' and tags.`{FRONT_TAG}` = 'true'")
            self.tagged_front[search_id] = {run.data.tags[TRIAL_TAG] for run in runs
                                            if run.info.run_id != parent}
        tagged = self.tagged_front[search_id]
        for trial_id in front:
            run_id = self._child(search_id, trial_id)
            if run_id is None:
                raise TrackingError(f"front member {trial_id} has no MLflow run yet")
            if trial_id not in tagged:
                self._log_model(search_id, trial_id, run_id)
                self.client.set_tag(run_id, FRONT_TAG, "true")
                tagged.add(trial_id)
        for trial_id in sorted(tagged - set(front)):
            run_id = self._child(search_id, trial_id)
            if run_id is not None:
                self.client.set_tag(run_id, FRONT_TAG, "false")
            tagged.discard(trial_id)

    def _log_model(self, search_id: str, trial_id: str, run_id: str) -> None:
        """Log the candidate's ONNX file as an MLflow ONNX model (once per run)."""
        from mlflow.entities import LoggedModelOutput

        entry = self.trials[(search_id, trial_id)]
        if not entry["model"] or not self.searches[search_id]["log_models"]:
            return
        if MODEL_TAG in self.client.get_run(run_id).data.tags:
            return
        with tempfile.TemporaryDirectory(prefix="paretonas-model-") as directory:
            local = Path(directory, MODEL_NAME)
            save_onnx_model(self.journal.resolve(entry["model"]), local)
            model = self.client.create_logged_model(
                self._experiment_id(search_id), name=entry["arch_key"], source_run_id=run_id,
                tags={TRIAL_TAG: trial_id, "paretonas.arch_key": entry["arch_key"]},
                params={str(k): str(v) for k, v in entry["arch"].items()}, model_type="onnx",
            )
            self.client.log_model_artifacts(model.model_id, str(local))
            self.client.finalize_logged_model(model.model_id, "READY")
        self.client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
        self.client.set_tag(run_id, MODEL_TAG, model.model_id)

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(mlflow_key(k)[:250], str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow's per-batch limit
            self.client.log_batch(run_id, params=items[start:start + 100])


def save_onnx_model(onnx_path: Path, target: Path) -> None:
    """Save an ONNX file as an MLflow ONNX model with a signature and an input example."""
    import mlflow.onnx
    import numpy as np
    import onnx
    import onnxruntime
    from mlflow.models import infer_signature

    model = onnx.load(str(onnx_path))
    example = example_input(model)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    output = session.run(None, {session.get_inputs()[0].name: example})[0]
    mlflow.onnx.save_model(
        model, str(target), signature=infer_signature(example, np.asarray(output)),
        input_example=example, save_as_external_data=False,
        onnx_execution_providers=["CPUExecutionProvider"],
        pip_requirements=[f"onnx=={onnx.__version__}", f"onnxruntime=={onnxruntime.__version__}"],
    )


def example_input(model: Any) -> Any:
    """A seeded float32 input for the model's first input (symbolic dimensions taken as 1)."""
    import numpy as np

    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.dim_value > 0 else 1 for d in dims]
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def front_csv(summary: FrontSummary, run_ids: dict[str, str] | None = None) -> str:
    """The front as CSV: arch key, MLflow run id, every metric, every choice value."""
    import csv
    import io

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


def _parent_note(entry: Entry) -> str:
    objectives = ", ".join(f"{k} ({v})" for k, v in entry["config"]["objectives"].items())
    return (f"paretonas search **{entry['config']['name']}**: objectives {objectives}. "
            f"Front members carry the tag `{FRONT_TAG} = true` and an MLflow ONNX model; "
            f"plots are under this run's `plots/`.")


def _failure_stage(error: str) -> str:
    marker = " failed in "
    if marker in error:
        return error.split(marker, 1)[1].split(":", 1)[0].strip()
    return "unknown"


def _tag(key: str, value: str) -> Any:
    from mlflow.entities import RunTag

    return RunTag(key, value)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(data, list):
        if data and all(isinstance(item, dict) and "name" in item for item in data):
            out = {}
            for item in data:
                out.update(_flatten(item, f"{prefix}{item['name']}."))
            return out
        return {prefix.rstrip("."): json.dumps(data)}
    return {prefix.rstrip("."): data}

