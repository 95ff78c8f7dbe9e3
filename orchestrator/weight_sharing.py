"""Weight-sharing mode: train one supernet, then evaluate subnets in batches per Tune trial.

Phase 1 trains the supernet as its own Tune trial (with a GPU when the config says
``device: cuda``), unless ``supernet.checkpoint`` names a trained one; the checkpoint
lives under ``output_dir`` (shared storage on a cluster), so a rerun resumes it.

Phase 2 sizes the orchestration for one-second candidates: each Tune trial evaluates a
batch of subnets proposed together, reports one result per subnet as it finishes (so
the searcher and the tracker hear of it at once), loads the supernet once per worker
process (cached by checkpoint path, not shipped through Tune), writes no Tune
checkpoint, and times subnet ``i`` on the hardware pool while it extracts and scores
subnet ``i + 1``. The front's ONNX models are re-extracted and exported at the end;
with ``supernet.finetune_epochs`` the final front is then fine-tuned, one Ray task per
subnet on the supernet trial's CPUs or GPU, once the hardware pool has let go of them.
"""

from __future__ import annotations

import functools
import json
import math
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import ray
from ray import tune

from evaluators.data import load_dataset
from evaluators.errors import TrainingError
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
from evaluators.training import TrainingSettings, train_and_evaluate
from hardware_pool.pool import HardwarePool, PoolClient
from hardware_pool.worker import MeasureRequest
from orchestrator.candidate import pin_away_from
from orchestrator.config import SearchConfig
from orchestrator.confirmation import Confirmation, confirm_front
from orchestrator.errors import SearchError
from orchestrator.experiment import ExperimentDir
from orchestrator.front import FrontArchive, FrontSummary, summarise_front
from orchestrator.journal import Journal, record_from_entry
from orchestrator.objectives import ObjectiveSet, target_metric
from orchestrator.ray_session import environment, ray_session
from orchestrator.records import TrialRecord
from orchestrator.searchers import create_searcher
from orchestrator.searchers.base import Searcher
from orchestrator.tracking import Tracker
from orchestrator.trial_events import RecordingCallback, trial_error
from orchestrator.tune_adapter import ARCH_KEY, SearcherAdapter
from orchestrator.tune_driver import (
    CHECKPOINT_S,
    Progress,
    SearchResult,
    _reattach,
    _tracking_checked,
)
from search_spaces import Architecture, InputSpec, create_space
from search_spaces.elastic import ElasticSpace
from search_spaces.errors import ParetonasError

#: Per-subnet stages; each one's time is reported as ``time_<stage>_s``.
SUBNET_STAGES = ("extract", "calibrate", "evaluate", "export", "measure")
SUBNET_METRICS = ("accuracy", "params", "onnx_mb")
#: Result key of a subnet finished before a resume, reported again without evaluating it.
REPLAYED = "replayed"
#: The front's hypervolume and tracker snapshot are refreshed at most this often (seconds).
FRONT_EVERY_S = 2.0
_TUNE_ENVIRONMENT = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "RAY_AIR_NEW_OUTPUT": "0",
                     "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "60",
                     # experiment state (trials, searcher), what a resume starts from
                     "TUNE_GLOBAL_CHECKPOINT_S": str(CHECKPOINT_S)}


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
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_train_trial, job=job),
                            config.supernet.resource_request()),
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

    @classmethod
    def of(cls, config: SearchConfig, input_spec: InputSpec, checkpoint: Path) -> SubnetSource:
        return cls(space=config.space.name,
                   space_options_json=json.dumps(config.space.options, sort_keys=True),
                   input_spec=input_spec, dataset=config.dataset.name, seed=config.seed,
                   checkpoint=str(checkpoint), eval_settings=config.supernet.eval_settings(config.seed))


@dataclass(frozen=True)
class SubnetJob:
    """What every subnet trial needs besides its architectures (picklable)."""

    source: SubnetSource
    pool: PoolClient
    reserved_cores: dict[str, list[int]]
    opset: int = 17
    #: Subnets finished before a resume (``<trial id>-<index>`` -> metrics): reported
    #: again as they were (``replayed``), not evaluated again.
    finished: dict[str, dict[str, float]] = field(default_factory=dict)


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
    trial_id = tune.get_context().get_trial_id()
    scorer = subnet_evaluator(job.source)
    with tempfile.TemporaryDirectory(prefix="paretonas-subnets-") as directory, \
            ThreadPoolExecutor(max_workers=1) as measuring:
        waiting: tuple[int, dict[str, Any], Future[dict[str, Any]]] | None = None
        for index, values in enumerate(config["archs"]):
            arch = scorer.space.architecture(values)
            earlier = job.finished.get(f"{trial_id}-{index}")
            if earlier is not None:  # a resumed trial: this one had finished before
                tune.report({**earlier, ARCH_KEY: arch.key, "subnet": index, REPLAYED: True})
                continue
            try:
                metrics, request = _score(scorer, arch, job, Path(directory))
                measured: Future[dict[str, Any]] = measuring.submit(_measure, job.pool, request)
            except ParetonasError as error:
                metrics, measured = {ARCH_KEY: arch.key}, _failed(error)
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
    """A ``SearcherAdapter`` whose trials get ``batch_size`` subnets each (one ``ask_batch``),
    the last batch cut to the budget; each result is told as it streams in (one
    ``tune.report`` per subnet), a subnet's error at once with its cause."""

    def __init__(self, searcher: Searcher, objectives: ObjectiveSet, *, batch_size: int,
                 budget: int) -> None:
        super().__init__(searcher, objectives, batch_size=batch_size)
        self.remaining = budget

    def suggest(self, trial_id: str) -> dict[str, Any]:
        count = max(min(self.batch_size, self.remaining), 0)  # Tune's num_samples keeps it > 0
        self.remaining -= count
        batch = self.strategy.ask_batch(count) if count else []
        self._pending[trial_id] = {arch.key: arch for arch in batch}
        self._order[trial_id] = tuple(batch)
        return {"archs": [arch.as_dict() for arch in batch], "arch_keys": [a.key for a in batch]}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if "error" not in result:
            super().on_trial_result(trial_id, result)
            return
        arch = self._pending.get(trial_id, {}).pop(str(result.get(ARCH_KEY)), None)
        if arch is not None:
            self.strategy.tell_failure(arch, str(result["error"]))

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "remaining": self.remaining}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.remaining = int(state["remaining"])


def is_subnet_metric(name: str) -> bool:
    return (name in SUBNET_METRICS or "@" in name
            or name in {f"time_{stage}_s" for stage in SUBNET_STAGES})


class SubnetRecorder(RecordingCallback):
    """Turns each subnet's ``tune.report`` into a ``TrialRecord`` as it arrives.

    A subnet's wall time runs from the previous report of its trial (or the trial's
    start) to its own, so the first one of a worker includes loading the supernet.
    Replayed results (subnets a resumed trial had finished before) make no new record.
    """

    def __init__(self, space_name: str, on_record: Callable[[TrialRecord], None]) -> None:
        super().__init__(space_name, on_record)
        self._last: dict[str, tuple[float, float]] = {}  # trial id -> (epoch, perf counter)
        self._reported: dict[str, set[int]] = {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._last[trial.trial_id] = (time.time(), time.perf_counter())
        self._reported[trial.trial_id] = set()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        index = result.get("subnet")
        if not isinstance(index, int):
            return
        self._reported.setdefault(trial.trial_id, set()).add(index)
        if result.get(REPLAYED):
            self._last[trial.trial_id] = (time.time(), time.perf_counter())
            return
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


class LiveFront:
    """The front as subnets arrive: ``FrontArchive`` (O(front) per record); its
    hypervolume and the tracker's snapshot are refreshed when the front changed, at most
    every ``every_s`` seconds (the hypervolume is what costs)."""

    def __init__(self, objectives: ObjectiveSet, *, tracker: Tracker, noise_aware: bool,
                 every_s: float = FRONT_EVERY_S) -> None:
        self.archive = FrontArchive(objectives, noise_aware=noise_aware)
        self.tracker, self.every_s = tracker, every_s
        self.summary = self.archive.summary()
        self._changed, self._shown_at = False, -math.inf

    def add(self, record: TrialRecord) -> None:
        self._changed |= self.archive.add(record)
        if self._changed and time.perf_counter() - self._shown_at >= self.every_s:
            self.refresh()

    def refresh(self) -> FrontSummary:
        self.summary, self._changed = self.archive.summary(), False
        self._shown_at = time.perf_counter()
        self.tracker.update_front(self.summary)
        return self.summary


def earlier_subnets(config: SearchConfig) -> list[TrialRecord]:
    """The subnets a killed run of ``config`` recorded, from ``output_dir``'s tracking
    journal (its last search of this name); the latest record of each subnet."""
    journal = Journal(output_dir=config.output_dir)
    if not journal.path.exists():
        return []
    entries = journal.entries()
    searches = [e["search_id"] for e in entries if e["kind"] == "search" and e["name"] == config.name]
    if not searches:
        return []
    latest = {e["trial_id"]: record_from_entry(e) for e in entries
              if e["kind"] == "trial" and e["search_id"] == searches[-1]}
    return list(latest.values())


def run_weight_sharing_search(
    config: SearchConfig, *, tracker: Tracker, on_progress: Callable[[Progress], None] | None = None,
    resume: bool = False, resume_errored: bool = False, overwrite: bool = False,
) -> SearchResult:
    """Phase 1 (train the supernet unless a checkpoint is named), then phase 2 (subnets).

    Phase 2 is the Tune experiment ``<output_dir>/<name>``. A new run refuses an existing
    one unless ``overwrite``; ``resume`` continues it: the supernet from its checkpoint,
    the subnet trials from Tune's saved state (the searcher from its saved state), and
    subnets the tracking journal holds as finished are not evaluated again.
    """
    started = time.perf_counter()
    dataset = load_dataset(config.dataset.name, seed=config.seed)
    space = elastic_space(config, dataset.input_spec)
    objectives = config.objective_set()
    searcher = create_searcher(config.searcher.name, space=space, seed=config.seed,
                               options=config.searcher.options,
                               num_objectives=len(config.objectives))
    output_dir = Path(config.output_dir).resolve()
    experiment = ExperimentDir.of(config)
    checkpoint = default_checkpoint(config)
    if config.supernet.checkpoint:
        read_checkpoint(checkpoint, space)  # a mismatch fails here, before Ray starts
    if resume:
        experiment.load()  # refuses a directory that holds no earlier run
    else:
        experiment.check_new(overwrite=overwrite)
    run_id = tracker.start_search(config, resume=resume)
    experiment.save(config, run_id=run_id)
    earlier = earlier_subnets(config) if resume else []
    records: dict[str, TrialRecord] = {record.trial_id: record for record in earlier}
    front = LiveFront(objectives, tracker=tracker, noise_aware=config.searcher.noise_aware)
    if earlier:
        front.archive.extend(earlier)
        front.refresh()
    status = "FAILED"
    confirmation: Confirmation | None = None

    def on_record(record: TrialRecord) -> None:
        records[record.trial_id] = record
        tracker.log_trial(record)
        front.add(record)
        if on_progress is not None:
            on_progress(Progress(done=len(records), failed=len(records) - front.archive.completed,
                                 budget=config.budget.candidates, front_size=len(front.archive),
                                 hypervolume=front.summary.hypervolume, last=record))

    try:
        with environment(**_TUNE_ENVIRONMENT), ray_session(config), _tracking_checked(config):
            if not config.supernet.checkpoint:
                checkpoint = train_supernet_trial(config)
                if isinstance(tracker, SupernetTracker) and not resume:
                    tracker.log_supernet(read_checkpoint(checkpoint, space)["history"], checkpoint)
            with HardwarePool([t.target() for t in config.targets],
                              timing=config.timing.settings(),
                              measure_timeout_s=config.timing.measure_timeout_s,
                              **config.pool.options()) as pool:
                source = SubnetSource.of(config, dataset.input_spec, checkpoint)
                job = SubnetJob(source=source, pool=pool.client(),
                                reserved_cores=pool.reserved_cores(),
                                finished={r.trial_id: r.metrics for r in earlier if r.ok})
                trainable = tune.with_resources(tune.with_parameters(_evaluate_subnets, job=job),
                                                {"cpu": config.budget.trial_cpus})
                _subnet_tuner(config, trainable, searcher, objectives, experiment, on_record,
                              resume=resume, resume_errored=resume_errored).fit()
                # The front's ONNX models (re-extracted), then re-timed by the confirmation
                # pass while the pool is up; members that join the front only then are
                # exported afterwards.
                for record in export_front(front.refresh().front, source=source,
                                           directory=output_dir / "front"):
                    records[record.trial_id] = record
                if config.pool.confirm.enabled:
                    confirmed, confirmation = confirm_front(
                        list(records.values()), pool=pool.client(), config=config,
                        sample_shape=dataset.input_spec.shape)
                    records = {record.trial_id: record for record in confirmed}
            summary = summarise_front(list(records.values()), objectives,
                                      noise_aware=config.searcher.noise_aware)
            missing = [record for record in summary.front if not record.onnx_path]
            for record in export_front(tuple(missing), source=source,
                                       directory=output_dir / "front"):
                records[record.trial_id] = record
            # the final front, with the pool's CPUs and GPUs free again
            tuned, untuned = finetune_front(tuple(records[r.trial_id] for r in summary.front),
                                            source=source, config=config,
                                            directory=output_dir / "front")
            for record in tuned:
                records[record.trial_id] = record
        summary = replace(summary, front=tuple(records[r.trial_id] for r in summary.front))
        if confirmation is not None:  # re-timed: the confirmed front is the search's last step
            tracker.update_front(summary)
        if isinstance(tracker, SupernetTracker):
            tracker.log_onnx_models(summary.front)
        tracker.finish_search(list(records.values()), summary, finetune_errors=untuned)
        status = "FINISHED" if summary.front else "FAILED"
    finally:
        tracker.end_search(status)
    if not summary.front:
        causes = sorted({r.error for r in records.values() if r.error})
        raise SearchError(f"no subnet completed ({len(records)} failed); causes: "
                          + "; ".join(causes[:3]))
    return SearchResult(records=tuple(records.values()), summary=summary,
                        wall_seconds=time.perf_counter() - started, run_id=run_id,
                        output_dir=output_dir, experiment_dir=experiment.path,
                        confirmation=confirmation, warnings=tuple(untuned.values()))


def _subnet_tuner(config: SearchConfig, trainable: Any, searcher: Searcher,
                  objectives: ObjectiveSet, experiment: ExperimentDir,
                  on_record: Callable[[TrialRecord], None], *, resume: bool,
                  resume_errored: bool) -> tune.Tuner:
    """Phase 2's Tuner: a new experiment, or the saved one restored (``resume``)."""
    if resume:
        tuner = tune.Tuner.restore(experiment.path, trainable=trainable,
                                   resume_errored=resume_errored)
        _reattach(tuner, on_record, threading.Event())
        return tuner
    batch = config.supernet.subnets_per_trial
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=BatchSearcherAdapter(searcher, objectives, batch_size=batch,
                                            budget=config.budget.candidates),
            num_samples=math.ceil(config.budget.candidates / batch),
            max_concurrent_trials=config.budget.max_concurrent_trials,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=config.name, storage_path=experiment.path.rsplit("/", 1)[0],
            callbacks=[SubnetRecorder(config.space.name, on_record)],
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            verbose=0,
        ),
    )


def export_front(front: tuple[TrialRecord, ...], *, source: SubnetSource,
                 directory: Path) -> list[TrialRecord]:
    """Re-extract the front's subnets (same recalibration) and export each to ONNX."""
    if not front:
        return []
    scorer = subnet_evaluator(source)
    exported = []
    for record in front:
        model = scorer.evaluate(record.arch).model
        path = export_onnx(model, example_input=scorer.space.example_input(1),
                           path=directory / f"{record.arch.key}.onnx", candidate=record.arch.key)
        exported.append(replace(record, onnx_path=str(path)))
    return exported


@dataclass(frozen=True)
class FinetuneJob:
    """What each fine-tuning task needs besides its subnet (picklable)."""

    source: SubnetSource
    settings: TrainingSettings


@dataclass(frozen=True)
class FinetunedSubnet:
    onnx_model: bytes
    accuracy: float
    train_seconds: float


def _finetune_subnet(job: FinetuneJob, values: dict[str, Any]) -> FinetunedSubnet:
    """Ray task: re-extract one subnet, train it from its inherited weights, export it."""
    scorer = subnet_evaluator(job.source)
    arch = scorer.space.architecture(values)
    model = scorer.evaluate(arch).model
    try:
        trained = train_and_evaluate(model, load_dataset(job.source.dataset, seed=job.source.seed),
                                     job.settings)
    except TrainingError as error:
        raise SearchError(f"fine-tuning front subnet {arch.key} failed: {error}") from None
    with tempfile.TemporaryDirectory(prefix="paretonas-finetuned-") as directory:
        path = export_onnx(model, example_input=scorer.space.example_input(1),
                           path=Path(directory, f"{arch.key}.onnx"), candidate=arch.key)
        return FinetunedSubnet(path.read_bytes(), trained.accuracy, trained.train_seconds)


def finetune_front(front: tuple[TrialRecord, ...], *, source: SubnetSource,
                   config: SearchConfig, directory: Path
                   ) -> tuple[list[TrialRecord], dict[str, str]]:
    """Train each front subnet ``supernet.finetune_epochs`` from its inherited weights and
    export the fine-tuned model over its ONNX file; ``finetuned_accuracy`` (whole test
    split) and ``time_finetune_s`` join its metrics. The architecture, so its latency, is
    unchanged; nothing happens without ``finetune_epochs``. Returns the records and, by
    trial id, the cause for each subnet whose fine-tuning failed: that one keeps its
    inherited model.

    One Ray task per subnet, with the supernet trial's ``cpus`` and ``device`` (a GPU per
    task when it is CUDA), run in parallel as the cluster allows: call it with the
    hardware pool shut, whose actors may hold those CPUs and GPUs.
    """
    settings = config.supernet.finetune_settings(config.seed)
    if settings is None or not front:
        return list(front), {}
    resources = config.supernet.resource_request()
    task = ray.remote(_finetune_subnet).options(
        num_cpus=resources["cpu"], num_gpus=resources["gpu"], max_retries=0)
    job = ray.put(FinetuneJob(source=source, settings=settings))
    pending = [task.remote(job, dict(record.arch.values)) for record in front]
    directory.mkdir(parents=True, exist_ok=True)
    tuned: list[TrialRecord] = []
    failures: dict[str, str] = {}
    for record, ref in zip(front, pending, strict=True):
        try:
            subnet: FinetunedSubnet = ray.get(ref)
        except ray.exceptions.RayError as error:  # the task raised, or its worker died
            cause = getattr(error, "cause", None)
            failures[record.trial_id] = (
                str(cause) if isinstance(cause, SearchError) else
                f"fine-tuning front subnet {record.arch.key} failed: {cause or error}")
            tuned.append(record)
            continue
        path = directory / f"{record.arch.key}.onnx"
        path.write_bytes(subnet.onnx_model)
        tuned.append(replace(record, onnx_path=str(path), metrics={
            **record.metrics, "finetuned_accuracy": subnet.accuracy,
            "time_finetune_s": subnet.train_seconds}))
    return tuned, failures
