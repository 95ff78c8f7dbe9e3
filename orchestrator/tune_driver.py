"""Run a search as Ray Tune trials: the searcher adapter, the trainable and the loop."""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import ray
from ray import tune
from ray.tune.search import Searcher as TuneSearcher

from evaluators.data import load_dataset
from hardware_pool.pool import HardwarePool
from orchestrator.candidate import (
    CandidateJob,
    evaluate_candidate,
    is_candidate_metric,
    pin_away_from,
)
from orchestrator.config import SearchConfig
from orchestrator.errors import SearchError
from orchestrator.front import FrontSummary, summarise_front
from orchestrator.objectives import ObjectiveSet
from orchestrator.records import TrialRecord, TrialStatus
from orchestrator.searchers import create_searcher
from orchestrator.searchers.base import Searcher
from orchestrator.tracking import Tracker
from search_spaces import Architecture, InputSpec, SearchSpace, create_space


class SearcherAdapter(TuneSearcher):
    """Presents a paretonas ``Searcher`` (ask/tell) to Ray Tune as a Tune ``Searcher``.

    It holds it as ``strategy``: Tune treats a ``searcher`` attribute as a wrapped
    Tune searcher and walks into it.
    """

    def __init__(self, searcher: Searcher, objectives: ObjectiveSet) -> None:
        super().__init__(metric=None, mode=None)
        self.strategy = searcher
        self.objectives = objectives
        self._pending: dict[str, Architecture] = {}

    def suggest(self, trial_id: str) -> dict[str, Any]:
        arch = self.strategy.ask()
        self._pending[trial_id] = arch
        return {"arch": arch.as_dict(), "arch_key": arch.key}

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        arch = self._pending.pop(trial_id, None)
        if arch is None:
            return
        if error or not result or any(name not in result for name in self.objectives.names):
            self.strategy.tell_failure(arch, "trial failed" if error else "objectives missing")
            return
        self.strategy.tell(
            arch,
            objectives=self.objectives.vector(result),
            violation=self.objectives.violation(result),
        )

    def get_state(self) -> dict[str, Any]:
        """Searcher state for Tune's experiment checkpoints (and so for resuming)."""
        return {"strategy": self.strategy, "pending": dict(self._pending)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.strategy = state["strategy"]
        self._pending = dict(state["pending"])


@dataclass(frozen=True)
class Progress:
    done: int
    failed: int
    budget: int
    front_size: int
    hypervolume: float
    last: TrialRecord


@dataclass(frozen=True)
class SearchResult:
    records: tuple[TrialRecord, ...]
    summary: FrontSummary
    wall_seconds: float
    run_id: str | None
    output_dir: Path


class _RecordingCallback(tune.Callback):
    """Turns finished Tune trials into ``TrialRecord``s as soon as they end."""

    def __init__(self, space_name: str, on_record: Callable[[TrialRecord], None]) -> None:
        self.space_name = space_name
        self.on_record = on_record
        self._started: dict[str, tuple[float, float]] = {}  # trial id -> (epoch, perf counter)

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its run config; the record sink (tracker, console) stays behind."""
        return {**self.__dict__, "on_record": None}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._started[trial.trial_id] = (time.time(), time.perf_counter())

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        metrics = {
            name: float(value) for name, value in (trial.last_result or {}).items()
            if is_candidate_metric(name) and isinstance(value, int | float)
            and not isinstance(value, bool)
        }
        if trial.checkpoint is None:
            self.on_record(self._record(trial, "completed", metrics=metrics))
            return
        # The trial's checkpoint holds its ONNX model, in Tune's (possibly remote) storage.
        with trial.checkpoint.as_directory() as directory:
            onnx = Path(directory, f"{trial.config['arch_key']}.onnx")
            self.on_record(self._record(trial, "completed", metrics=metrics,
                                        onnx_path=str(onnx) if onnx.is_file() else None))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.on_record(self._record(trial, "failed", error=_trial_error(trial)))

    def _record(self, trial: Any, status: TrialStatus, **fields: Any) -> TrialRecord:
        started_at, started = self._started.pop(trial.trial_id, (time.time(), time.perf_counter()))
        return TrialRecord(
            trial_id=trial.trial_id,
            arch=Architecture.from_dict(self.space_name, trial.config["arch"]),
            status=status,
            wall_seconds=time.perf_counter() - started,
            started_at=started_at,
            **fields,
        )


def _trial_error(trial: Any) -> str:
    """The cause of a failed trial in one line, without Ray's wrapping.

    Read from the driver-side copies Tune has just written (the storage copies are
    synced later).
    """
    pickled = trial.pickled_error_file
    if pickled and Path(pickled).is_file():
        error = cloudpickle.loads(Path(pickled).read_bytes())
        cause = getattr(error, "cause", None) or error
        lines = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {lines[-1] if lines else ''}"
    text = Path(trial.error_file).read_text() if trial.error_file else ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def _run_trial(config: dict[str, Any], job: CandidateJob) -> None:
    """The Tune trainable: one candidate per trial."""
    pin_away_from(job.reserved_cores, ray.get_runtime_context().get_node_id())
    space = _space_for(job.space, json.dumps(job.space_options, sort_keys=True), job.input_spec)
    with tempfile.TemporaryDirectory(prefix="paretonas-trial-") as directory:
        metrics = evaluate_candidate(config["arch"], job, space=space, onnx_dir=Path(directory))
        # Reported as a checkpoint so Tune persists the ONNX model to its storage.
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


@functools.lru_cache(maxsize=4)
def _space_for(spec: str, options_json: str, input_spec: InputSpec) -> SearchSpace:
    """One space instance per worker process (Tune reuses worker actors across trials)."""
    return create_space(spec, input_spec=input_spec, options=json.loads(options_json))


@contextmanager
def ray_session(config: SearchConfig) -> Iterator[None]:
    """Connect to the configured cluster, or start Ray in-process; shut down what we start."""
    if ray.is_initialized():
        yield
        return
    ray.init(
        address=config.ray.address,
        num_cpus=config.ray.num_cpus if config.ray.address is None else None,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_search(
    config: SearchConfig,
    *,
    tracker: Tracker,
    on_progress: Callable[[Progress], None] | None = None,
) -> SearchResult:
    """Run the whole search described by ``config``; every finished trial reaches ``tracker``."""
    started = time.perf_counter()
    dataset = load_dataset(config.dataset.name, seed=config.seed)
    space = create_space(config.space.name, input_spec=dataset.input_spec,
                         options=config.space.options)
    space.validate(space.sample(np.random.default_rng(config.seed)))
    objectives = config.objective_set()
    searcher = create_searcher(config.searcher.name, space=space, seed=config.seed,
                               options=config.searcher.options)
    output_dir = Path(config.output_dir).resolve()
    records: list[TrialRecord] = []

    def on_record(record: TrialRecord) -> None:
        records.append(record)
        tracker.log_trial(record)
        if on_progress is not None:
            summary = summarise_front(records, objectives)
            on_progress(Progress(
                done=len(records), failed=sum(not r.ok for r in records),
                budget=config.budget.candidates, front_size=len(summary.front),
                hypervolume=summary.hypervolume, last=record,
            ))

    run_id = tracker.start_search(config)
    status = "FAILED"
    try:
        with _environment(TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1", RAY_AIR_NEW_OUTPUT="0",
                          TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S="60"), \
                ray_session(config), \
                HardwarePool([t.target() for t in config.targets],
                             timing=config.timing.settings(),
                             measure_timeout_s=config.timing.measure_timeout_s) as pool:
            job = CandidateJob(
                space=config.space.name, space_options=dict(config.space.options),
                input_spec=dataset.input_spec, dataset=config.dataset.name,
                training=config.training.settings(config.seed), pool=pool.client(),
                reserved_cores=pool.reserved_cores(),
            )
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(_run_trial, job=job),
                                    {"cpu": config.budget.trial_cpus}),
                tune_config=tune.TuneConfig(
                    search_alg=SearcherAdapter(searcher, objectives),
                    num_samples=config.budget.candidates,
                    max_concurrent_trials=config.budget.max_concurrent_trials,
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name=f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                    storage_path=str(output_dir),
                    callbacks=[_RecordingCallback(space.name, on_record)],
                    failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                    verbose=0,
                ),
            )
            tuner.fit()
        summary = summarise_front(records, objectives)
        tracker.finish_search(records, summary)
        status = "FINISHED" if summary.front else "FAILED"
    finally:
        tracker.end_search(status)
    if not summary.front:
        causes = sorted({r.error for r in records if r.error})
        raise SearchError(
            f"no candidate completed ({len(records)} failed); causes: " + "; ".join(causes[:3])
        )
    return SearchResult(records=tuple(records), summary=summary,
                        wall_seconds=time.perf_counter() - started, run_id=run_id,
                        output_dir=output_dir)
