"""Choose a model from a search's front in MLflow and register it (finished or running search).

    >>> best = select("paretonas-quickstart", uri="sqlite:///mlflow.db",
    ...               where="latency_ms@cpu-openvino <= 5", maximize="accuracy")
    >>> register(best, name="digits-cnn", alias="champion", uri="sqlite:///mlflow.db")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import SelectionError, TrackingError
from orchestrator.mlflow_sink import (
    FINETUNE_ERROR_TAG,
    FRONT_TAG,
    MODEL_TAG,
    SEARCH_TAG,
    mlflow_key,
)
from orchestrator.tracking import check_server

_CONDITION = re.compile(r"^\s*([A-Za-z0-9_.@/\-]+)\s*(<=|>=|!=|==|=|<|>)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Candidate:
    """A front member as MLflow has it (metric names as logged: ``latency_ms/cpu-ort``)."""

    run_id: str
    arch_key: str
    trial_id: str
    metrics: dict[str, float]
    model_id: str | None
    search_run_id: str
    finetune_error: str | None = None  # its model kept inherited weights: fine-tuning failed

    def metric(self, name: str) -> float:
        return self.metrics[mlflow_key(name)]


def parse_where(where: str | None) -> list[tuple[str, str, float]]:
    """``"latency_ms@cpu-ort <= 5 and accuracy > 0.9"`` -> [(mlflow key, op, value), ...]."""
    if not where or not where.strip():
        return []
    conditions = []
    for part in re.split(r"\s+and\s+", where.strip(), flags=re.I):
        match = _CONDITION.match(part)
        if match is None:
            raise SelectionError(f"--where {part.strip()!r}: write METRIC OP NUMBER joined by 'and', "
                                 f"e.g. \"latency_ms@cpu-ort <= 5 and accuracy >= 0.9\"")
        name, op, raw = match.groups()
        try:
            value = float(raw)
        except ValueError:
            raise SelectionError(f"--where {part.strip()!r}: {raw!r} is not a number") from None
        conditions.append((mlflow_key(name), "=" if op == "==" else op, value))
    return conditions


def search_run(client: Any, experiment: str, search: str | None = None) -> Any:
    """The search's parent run: ``search`` (run id or name) or the experiment's latest."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SelectionError(f"no MLflow experiment {experiment!r} at {client.tracking_uri}; "
                             f"check tracking.experiment and the tracking URI")
    query = "tags.`paretonas.kind` = 'search'"
    runs = client.search_runs([found.experiment_id], filter_string=query,
                              order_by=["attributes.start_time DESC"], max_results=1000)
    if search is not None:
        runs = [r for r in runs if search in (r.info.run_id, r.info.run_name)]
    if not runs:
        which = f"search {search!r}" if search else "any search"
        raise SelectionError(f"experiment {experiment!r} has no runs of {which}; run a search "
                             f"first (paretonas run CONFIG)")
    return runs[0]


def front(experiment: str, *, uri: str, search: str | None = None) -> list[Candidate]:
    """The current front members of a search (the latest one by default), best first."""
    client = _client(uri)
    parent = search_run(client, experiment, search)
    return _candidates(client, parent, [])


def select(experiment: str, *, uri: str, where: str | None = None, maximize: str | None = None,
           minimize: str | None = None, search: str | None = None) -> Candidate:
    """The front member that satisfies ``where`` with the best ``maximize``/``minimize`` metric."""
    if (maximize is None) == (minimize is None):
        raise SelectionError("give exactly one of --maximize METRIC or --minimize METRIC")
    client = _client(uri)
    parent = search_run(client, experiment, search)
    conditions = parse_where(where)
    metric = mlflow_key(maximize or minimize or "")
    order = f"metrics.`{metric}` {'DESC' if maximize else 'ASC'}"
    chosen = _candidates(client, parent, conditions, order_by=[order])
    chosen = [c for c in chosen if metric in c.metrics]
    if not chosen:
        members = _candidates(client, parent, [])
        if members and metric not in members[0].metrics:
            raise SelectionError(f"unknown metric {maximize or minimize!r}; front runs have: "
                                 f"{', '.join(sorted(members[0].metrics))}")
        raise SelectionError(f"none of the {len(members)} front members of run "
                             f"{parent.info.run_id} satisfies {where!r}; see them with "
                             f"`paretonas front {experiment}` and relax the condition")
    return chosen[0]


def register(candidate: Candidate, *, name: str, uri: str, alias: str | None = None) -> Any:
    """Register the candidate's MLflow ONNX model as a new version of ``name`` (with tags)."""
    from mlflow.exceptions import MlflowException

    if candidate.model_id is None:
        raise SelectionError(f"run {candidate.run_id} has no MLflow model yet (front members get "
                             f"one unless tracking.log_models is false; a running search may "
                             f"still be writing it)")
    client = _client(uri)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, tags={"paretonas": "true"})
    tags = {"paretonas.arch_key": candidate.arch_key, "paretonas.trial_id": candidate.trial_id,
            "paretonas.search_run_id": candidate.search_run_id}
    for key, value in candidate.metrics.items():
        if key == "accuracy" or key.startswith(("latency_ms/", "params")):
            tags[key] = f"{value:.6g}"
    targets = sorted(k.split("/", 1)[1] for k in candidate.metrics if k.startswith("latency_ms/"))
    tags["targets"] = ",".join(targets)
    # A database registry looks the logged model up through the global tracking URI.
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        version = client.create_model_version(name, source=f"models:/{candidate.model_id}",
                                              run_id=candidate.run_id, tags=tags,
                                              model_id=candidate.model_id)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return version


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    check_server(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _candidates(client: Any, parent: Any, conditions: list[tuple[str, str, float]],
                order_by: list[str] | None = None) -> list[Candidate]:
    search_id = parent.data.tags.get(SEARCH_TAG)
    if search_id is None:
        raise TrackingError(f"run {parent.info.run_id} is not a paretonas search run")
    query = " and ".join([
        f"tags.`{SEARCH_TAG}` = '{search_id}'", f"tags.`{FRONT_TAG}` = 'true'",
        "attributes.status = 'FINISHED'",
        *(f"metrics.`{key}` {op} {value!r}" for key, op, value in conditions),
    ])
    runs = client.search_runs([parent.info.experiment_id], filter_string=query,
                              order_by=order_by or ["metrics.accuracy DESC"], max_results=10000)
    return [
        Candidate(run_id=run.info.run_id, arch_key=run.data.tags.get("paretonas.arch_key", ""),
                  trial_id=run.data.tags.get("paretonas.trial_id", ""),
                  metrics=dict(run.data.metrics), model_id=run.data.tags.get(MODEL_TAG),
                  search_run_id=parent.info.run_id,
                  finetune_error=run.data.tags.get(FINETUNE_ERROR_TAG))
        for run in runs
    ]
