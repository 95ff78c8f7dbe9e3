"""Weight-sharing mode: train one supernet, then evaluate subnets in batches per Tune trial.

Phase 1 trains the supernet as its own Tune trial (with a GPU when the config says
``device: cuda``), unless ``supernet.checkpoint`` names a trained one; the checkpoint
lives under ``output_dir`` (shared storage on a cluster), so a rerun resumes it.

Phase 2 sizes the orchestration for one-second candidates: each Tune trial evaluates a
batch of subnets proposed together, reports one result per subnet as it finishes (so
the searcher and the tracker hear of it at once), loads the supernet once per worker
process (cached by checkpoint path, not shipped through Tune), writes no Tune
checkpoint, and times subnet ``i`` on the hardware pool while it extracts and scores
subnet ``i + 1``. The front's ONNX models are re-extracted and exported at the end.
"""

from __future__ import annotations

import functools
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import ray
from ray import tune

from evaluators.data import load_dataset
from evaluators.export import export_onnx
from evaluators.supernet import (
    SubnetEvalSettings,
    SubnetEvaluation,
    SubnetEvaluator,
    SupernetSettings,
    load_supernet,
    read_checkpoint,
    train_supernet,
)
from hardware_pool.pool import HardwarePool, PoolClient
from hardware_pool.worker import MeasureRequest
from orchestrator.candidate import pin_away_from
from orchestrator.config import SearchConfig
from orchestrator.errors import SearchError
from orchestrator.front import summarise_front
from orchestrator.objectives import ObjectiveSet, target_metric
from orchestrator.ray_session import environment, ray_session
from orchestrator.records import TrialRecord
from orchestrator.searchers import create_searcher
from orchestrator.searchers.base import Searcher
from orchestrator.tracking import Tracker
from orchestrator.trial_events import trial_error
from orchestrator.tune_adapter import SearcherAdapter
from orchestrator.tune_driver import Progress, SearchResult, _tracking_checked
from search_spaces import Architecture, InputSpec, create_space
from search_spaces.elastic import ElasticSpace
from search_spaces.errors import ParetonasError

#: Per-subnet stages; each one's time is reported as ``time_<stage>_s``.
SUBNET_STAGES = ("extract", "calibrate", "evaluate", "export", "measure")
SUBNET_METRICS = ("accuracy", "params", "onnx_mb")
#: The front (progress display, tracker) is recomputed every this many subnets.
FRONT_EVERY = 25
_TUNE_ENVIRONMENT = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_AIR_NEW_OUTPUT": "0",
                     "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "60"}


@runtime_checkable
class SupernetTracker(Protocol):
    """A tracker that also records the supernet (loss curve, checkpoint) and attaches the
    front's ONNX models, exported at the end, to candidates it has already logged."""

    def log_supernet(self, history: list[dict[str, float]], checkpoint: Path) -> None: ...

    def log_onnx_models(self, records: Sequence[TrialRecord]) -> None: ...


def default_checkpoint(config: SearchConfig) -> Path:
    """Where a config's supernet is trained to when it names none: under ``output_dir``."""
    if config.supernet.checkpoint:
        return Path(config.supernet.checkpoint).resolve()
    return Path(config.output_dir, "supernet", f"{config.name}.pt").resolve()


def elastic_space(config: SearchConfig, input_spec: InputSpec) -> ElasticSpace:
    space = create_space(config.space.name, input_spec=input_spec, options=config.space.options)
    if not isinstance(space, ElasticSpace):
        raise SearchError(f"mode weight_sharing needs an ElasticSpace; {config.space.name!r} "
                          f"built a {type(space).__name__}")
    return space


# -- phase 1: the supernet as a Tune trial ---------------------------------------------------
@dataclass(frozen=True)
class SupernetJob:
    space: str
    space_options: dict[str, Any]
    dataset: str
    seed: int
    settings: SupernetSettings
    checkpoint: str


def _train_trial(config: dict[str, Any], job: SupernetJob) -> None:
    dataset = load_dataset(job.dataset, seed=job.seed)
    space = _space_for(job.space, json.dumps(job.space_options, sort_keys=True),
                       dataset.input_spec)
    train_supernet(space, dataset, job.settings, checkpoint=Path(job.checkpoint),
                   on_log=lambda entry: tune.report({k: float(v) for k, v in entry.items()}))


def train_supernet_trial(config: SearchConfig, *, checkpoint: Path | None = None) -> Path:
    """Train (or resume) the config's supernet as one Tune trial; return the checkpoint.

    Needs a Ray session. The trial asks for ``supernet.cpus`` CPUs and one GPU when
    ``supernet.device`` is CUDA. A finished checkpoint is not trained again.
    """
    path = checkpoint or default_checkpoint(config)
    settings = config.supernet.settings(config.seed)
    job = SupernetJob(space=config.space.name, space_options=dict(config.space.options),
                      dataset=config.dataset.name, seed=config.seed, settings=settings,
                      checkpoint=str(path))
    resources: dict[str, float] = {"cpu": config.supernet.cpus}
    if settings.device.startswith("cuda"):
        resources["gpu"] = 1
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_train_trial, job=job), resources),
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(
            name=f"{config.name}-supernet-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(Path(config.output_dir).resolve()), verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    with environment(**_TUNE_ENVIRONMENT):
        results = tuner.fit()
    if results.errors:
        cause = str(results.errors[0]).strip().splitlines()
        raise SearchError(f"supernet training failed: {cause[-1] if cause else 'unknown error'}; "
                          f"rerun to resume from {path}")
    return path


# -- phase 2: batches of subnets per Tune trial ------------------------------------------------
@dataclass(frozen=True)
class SubnetSource:
    """Where a worker's subnets come from: the space, data and supernet checkpoint (hashable)."""

    space: str
    space_options_json: str
    input_spec: InputSpec
    dataset: str
    seed: int
    checkpoint: str
    eval_settings: SubnetEvalSettings


@dataclass(frozen=True)
class SubnetJob:
    """What every subnet trial needs besides its architectures (picklable)."""

    source: SubnetSource
    pool: PoolClient
    reserved_cores: dict[str, list[int]]
    opset: int = 17


@functools.lru_cache(maxsize=4)
def _space_for(spec: str, options_json: str, input_spec: InputSpec) -> ElasticSpace:
    space = create_space(spec, input_spec=input_spec, options=json.loads(options_json))
    if not isinstance(space, ElasticSpace):
        raise SearchError(f"{spec} is not an ElasticSpace")
    return space


def subnet_evaluator(source: SubnetSource) -> SubnetEvaluator:
    """This process's evaluator for ``source``: the supernet is read once from shared
    storage (cached by checkpoint path and modification time), not shipped per trial."""
    return _evaluator_for(source, Path(source.checkpoint).stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _evaluator_for(source: SubnetSource, modified_ns: int) -> SubnetEvaluator:
    space = _space_for(source.space, source.space_options_json, source.input_spec)
    return SubnetEvaluator(space=space, supernet=load_supernet(space, Path(source.checkpoint)),
                           dataset=load_dataset(source.dataset, seed=source.seed),
                           settings=source.eval_settings)


def _evaluate_subnets(config: dict[str, Any], job: SubnetJob) -> None:
    """The Tune trainable: score a batch of subnets, report each as it is measured."""
    pin_away_from(job.reserved_cores, ray.get_runtime_context().get_node_id())
    scorer = subnet_evaluator(job.source)
    with tempfile.TemporaryDirectory(prefix="paretonas-subnets-") as directory, \
            ThreadPoolExecutor(max_workers=1) as measuring:
        waiting: tuple[int, dict[str, Any], Future[dict[str, Any]]] | None = None
        for index, values in enumerate(config["archs"]):
            arch = scorer.space.architecture(values)
            try:
                metrics, request = _score(scorer, arch, job, Path(directory))
                measured: Future[dict[str, Any]] = measuring.submit(_measure, job.pool, request)
            except ParetonasError as error:
                metrics, measured = {"arch_key": arch.key}, _failed(error)
            if waiting is not None:
                _report(*waiting)
            waiting = (index, metrics, measured)
        if waiting is not None:
            _report(*waiting)


def _score(scorer: SubnetEvaluator, arch: Architecture, job: SubnetJob, directory: Path
           ) -> tuple[dict[str, Any], MeasureRequest]:
    result: SubnetEvaluation = scorer.evaluate(arch)
    start = time.perf_counter()
    path = export_onnx(result.model, example_input=scorer.space.example_input(1),
                       path=directory / f"{arch.key}.onnx", candidate=arch.key, opset=job.opset)
    request = MeasureRequest(arch.key, path.read_bytes(), job.source.input_spec.shape)
    path.unlink()
    metrics: dict[str, Any] = {
        "arch_key": arch.key, "accuracy": result.accuracy, "params": float(result.params),
        "onnx_mb": len(request.onnx_model) / 1e6, "time_export_s": time.perf_counter() - start,
        **{f"time_{stage}_s": seconds for stage, seconds in result.timings.items()},
    }
    return metrics, request


def _measure(pool: PoolClient, request: MeasureRequest) -> dict[str, Any]:
    start = time.perf_counter()
    metrics: dict[str, Any] = {}
    for target, measurement in pool.measure_all(request).items():
        for name, value in measurement.as_metrics().items():
            metrics[target_metric(name, target)] = float(value)
        metrics[target_metric("latency_ms", target)] = measurement.median_ms
        metrics[target_metric("latency_p90_ms", target)] = measurement.p90_ms
    metrics["time_measure_s"] = time.perf_counter() - start
    return metrics


def _failed(error: BaseException) -> Future[dict[str, Any]]:
    future: Future[dict[str, Any]] = Future()
    future.set_exception(error)
    return future


def _report(index: int, metrics: dict[str, Any], measured: Future[dict[str, Any]]) -> None:
    try:
        result = {**metrics, **measured.result(), "subnet": index}
    except ParetonasError as error:
        result = {**metrics, "subnet": index, "error": f"{type(error).__name__}: {error}"}
    tune.report(result)


class BatchSearcherAdapter(SearcherAdapter):
    """Asks the searcher for a batch of subnets per trial and tells it each result as it
    streams in (one ``tune.report`` per subnet); the last batch is cut to the budget."""

    def __init__(self, searcher: Searcher, objectives: ObjectiveSet, *, batch_size: int,
                 budget: int) -> None:
        super().__init__(searcher, objectives)
        self.batch_size, self.remaining = batch_size, budget
        self._batches: dict[str, dict[str, Architecture]] = {}

    def suggest(self, trial_id: str) -> dict[str, Any]:
        count = max(min(self.batch_size, self.remaining), 0)  # Tune's num_samples keeps it > 0
        self.remaining -= count
        batch = [self.strategy.ask() for _ in range(count)]
        self._batches[trial_id] = {arch.key: arch for arch in batch}
        return {"archs": [arch.as_dict() for arch in batch]}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        arch = self._batches.get(trial_id, {}).pop(str(result.get("arch_key")), None)
        if arch is not None:
            self._tell(arch, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        for arch in self._batches.pop(trial_id, {}).values():
            self.strategy.tell_failure(arch, "trial failed" if error else "no result")

    def _tell(self, arch: Architecture, result: dict[str, Any]) -> None:
        if "error" in result or any(name not in result for name in self.objectives.names):
            self.strategy.tell_failure(arch, str(result.get("error", "objectives missing")))
            return
        self.strategy.tell(arch, objectives=self.objectives.vector(result),
                           violation=self.objectives.violation(result))

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "batches": dict(self._batches), "remaining": self.remaining}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._batches, self.remaining = dict(state["batches"]), int(state["remaining"])


def is_subnet_metric(name: str) -> bool:
    return (name in SUBNET_METRICS or "@" in name
            or name in {f"time_{stage}_s" for stage in SUBNET_STAGES})


class SubnetRecorder(tune.Callback):
    """Turns each subnet's ``tune.report`` into a ``TrialRecord`` as it arrives.

    A subnet's wall time runs from the previous report of its trial (or the trial's
    start) to its own, so the first one of a worker includes loading the supernet.
    """

    def __init__(self, space_name: str, on_record: Callable[[TrialRecord], None]) -> None:
        self.space_name = space_name
        self.on_record = on_record
        self._last: dict[str, tuple[float, float]] = {}  # trial id -> (epoch, perf counter)
        self._reported: dict[str, set[int]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "on_record": None}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._last[trial.trial_id] = (time.time(), time.perf_counter())
        self._reported[trial.trial_id] = set()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        index = result.get("subnet")
        if not isinstance(index, int):
            return
        self._reported.setdefault(trial.trial_id, set()).add(index)
        metrics = {name: float(value) for name, value in result.items()
                   if is_subnet_metric(name) and isinstance(value, int | float)
                   and not isinstance(value, bool)}
        error = result.get("error")
        self._emit(trial, index, "failed" if error else "completed", metrics=metrics,
                   error=str(error) if error else None)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, "no result reported")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, trial_error(trial))

    def _finish(self, trial: Any, cause: str) -> None:
        reported = self._reported.pop(trial.trial_id, set())
        for index in range(len(trial.config["archs"])):
            if index not in reported:
                self._emit(trial, index, "failed", error=cause)
        self._last.pop(trial.trial_id, None)

    def _emit(self, trial: Any, index: int, status: Any, **fields: Any) -> None:
        now = (time.time(), time.perf_counter())
        started_at, started = self._last.get(trial.trial_id, now)
        self._last[trial.trial_id] = now
        self.on_record(TrialRecord(
            trial_id=f"{trial.trial_id}-{index}",
            arch=Architecture.from_dict(self.space_name, trial.config["archs"][index]),
            status=status, wall_seconds=now[1] - started, started_at=started_at, **fields,
        ))


def run_weight_sharing_search(
    config: SearchConfig, *, tracker: Tracker, on_progress: Callable[[Progress], None] | None = None,
    resume: bool = False,
) -> SearchResult:
    """Phase 1 (train the supernet unless a checkpoint is named), then phase 2 (subnets).

    ``resume`` continues the tracker's record of the search; the supernet always resumes
    from its checkpoint, the subnet phase starts again.
    """
    started = time.perf_counter()
    dataset = load_dataset(config.dataset.name, seed=config.seed)
    space = elastic_space(config, dataset.input_spec)
    objectives = config.objective_set()
    searcher = create_searcher(config.searcher.name, space=space, seed=config.seed,
                               options=config.searcher.options)
    output_dir = Path(config.output_dir).resolve()
    records: list[TrialRecord] = []
    summary = summarise_front([], objectives)
    run_id = tracker.start_search(config, resume=resume)
    status = "FAILED"

    shown = [summary]

    def on_record(record: TrialRecord) -> None:
        records.append(record)
        tracker.log_trial(record)
        if len(records) % FRONT_EVERY == 0 or len(records) == config.budget.candidates:
            shown[0] = summarise_front(records, objectives)  # not per subnet: it is O(n^2)
            tracker.update_front(shown[0])
        if on_progress is not None:
            on_progress(Progress(done=len(records), failed=sum(not r.ok for r in records),
                                 budget=config.budget.candidates, front_size=len(shown[0].front),
                                 hypervolume=shown[0].hypervolume, last=record))

    checkpoint = default_checkpoint(config)
    if config.supernet.checkpoint:
        read_checkpoint(checkpoint, space)  # a mismatch fails here, before Ray starts
    try:
        with environment(**_TUNE_ENVIRONMENT), ray_session(config), _tracking_checked(config):
            if not config.supernet.checkpoint:
                checkpoint = train_supernet_trial(config)
                if isinstance(tracker, SupernetTracker):
                    tracker.log_supernet(read_checkpoint(checkpoint, space)["history"], checkpoint)
            with HardwarePool([t.target() for t in config.targets],
                              timing=config.timing.settings(),
                              measure_timeout_s=config.timing.measure_timeout_s,
                              **config.pool.options()) as pool:
                source = SubnetSource(
                    space=config.space.name,
                    space_options_json=json.dumps(config.space.options, sort_keys=True),
                    input_spec=dataset.input_spec, dataset=config.dataset.name, seed=config.seed,
                    checkpoint=str(checkpoint),
                    eval_settings=config.supernet.eval_settings(config.seed))
                job = SubnetJob(source=source, pool=pool.client(),
                                reserved_cores=pool.reserved_cores())
                batch = config.supernet.subnets_per_trial
                tuner = tune.Tuner(
                    tune.with_resources(tune.with_parameters(_evaluate_subnets, job=job),
                                        {"cpu": config.budget.trial_cpus}),
                    tune_config=tune.TuneConfig(
                        search_alg=BatchSearcherAdapter(searcher, objectives, batch_size=batch,
                                                        budget=config.budget.candidates),
                        num_samples=math.ceil(config.budget.candidates / batch),
                        max_concurrent_trials=config.budget.max_concurrent_trials,
                        reuse_actors=True,
                    ),
                    run_config=tune.RunConfig(
                        name=f"{config.name}-subnets-{time.strftime('%Y%m%d-%H%M%S')}",
                        storage_path=str(output_dir),
                        callbacks=[SubnetRecorder(space.name, on_record)],
                        failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                        verbose=0,
                    ),
                )
                tuner.fit()
        summary = summarise_front(records, objectives)
        front = export_front(summary.front, space=space, checkpoint=checkpoint, config=config,
                             directory=output_dir / "front")
        by_id = {record.trial_id: record for record in front}
        records = [by_id.get(record.trial_id, record) for record in records]
        summary = replace(summary, front=tuple(front))
        if isinstance(tracker, SupernetTracker):
            tracker.log_onnx_models(front)
        tracker.finish_search(records, summary)
        status = "FINISHED" if summary.front else "FAILED"
    finally:
        tracker.end_search(status)
    if not summary.front:
        causes = sorted({r.error for r in records if r.error})
        raise SearchError(f"no subnet completed ({len(records)} failed); causes: "
                          + "; ".join(causes[:3]))
    return SearchResult(records=tuple(records), summary=summary,
                        wall_seconds=time.perf_counter() - started, run_id=run_id,
                        output_dir=output_dir)


def export_front(front: tuple[TrialRecord, ...], *, space: ElasticSpace, checkpoint: Path,
                 config: SearchConfig, directory: Path) -> list[TrialRecord]:
    """Re-extract the front's subnets (same recalibration) and export each to ONNX."""
    if not front:
        return []
    scorer = SubnetEvaluator(space=space, supernet=load_supernet(space, checkpoint),
                             dataset=load_dataset(config.dataset.name, seed=config.seed),
                             settings=config.supernet.eval_settings(config.seed))
    exported = []
    for record in front:
        model = scorer.evaluate(record.arch).model
        path = export_onnx(model, example_input=space.example_input(1),
                           path=directory / f"{record.arch.key}.onnx", candidate=record.arch.key)
        exported.append(replace(record, onnx_path=str(path)))
    return exported
