"""Run a search as Ray Tune trials: the trainable and the loop (from-scratch mode)."""

from __future__ import annotations

import functools
import json
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import TrialScheduler

from evaluators.backends import get_backend
from hardware_pool.pool import HardwarePool
from orchestrator.candidate import (
    CandidateJob,
    evaluate_candidate,
    pin_away_from,
)
from orchestrator.config import SearchConfig
from orchestrator.confirmation import Confirmation, confirm_front
from orchestrator.errors import SearchError, SearchInterrupted
from orchestrator.experiment import ExperimentDir
from orchestrator.front import FrontArchive, FrontSummary, summarise_front
from orchestrator.preflight import Preflight, preflight
from orchestrator.ray_session import environment, ray_session
from orchestrator.records import TrialRecord
from orchestrator.schedulers import ParetoHalving, ParetoHalvingScheduler
from orchestrator.tracking import Tracker, check_cluster_tracking
from orchestrator.trial_events import RecordingCallback, candidate_metrics
from orchestrator.tune_adapter import FIDELITY, SearcherAdapter
from search_spaces import Architecture, InputSpec, SearchSpace, create_space

#: Seconds between saves of Tune's experiment state (a trial that ends in the last
#: CHECKPOINT_S before a crash runs again on resume; the tracker logs it once).
CHECKPOINT_S = 2


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
    experiment_dir: str = ""
    confirmation: Confirmation | None = None  # the final front's confirmation pass, if run
    warnings: tuple[str, ...] = ()  # what went wrong after the search but lost no result


def _run_trial(config: dict[str, Any], job: CandidateJob) -> None:
    """The Tune trainable: one candidate per trial."""
    node_id = ray.get_runtime_context().get_node_id()
    pin_away_from(job.reserved_cores, node_id)
    space = _space_for(job.space, json.dumps(job.space_options, sort_keys=True), job.input_spec)
    with tempfile.TemporaryDirectory(prefix="paretonas-trial-") as directory:
        # Reported with a checkpoint so Tune persists the ONNX model to its storage; the node
        # id (not a candidate metric) says where the trial ran. A rung's partial result
        # carries its fidelity: the scheduler may stop the trial there.
        def report_rung(metrics: dict[str, float]) -> None:
            tune.report({**metrics, "node_id": node_id, FIDELITY: metrics["epochs"]},
                        checkpoint=tune.Checkpoint.from_directory(directory))

        metrics = evaluate_candidate(config["arch"], job, space=space, onnx_dir=Path(directory),
                                     report_rung=report_rung)
        tune.report({**metrics, "node_id": node_id},
                    checkpoint=tune.Checkpoint.from_directory(directory))


@functools.lru_cache(maxsize=4)
def _space_for(spec: str, options_json: str, input_spec: InputSpec) -> SearchSpace:
    """One space instance per worker process (Tune reuses worker actors across trials)."""
    return create_space(spec, input_spec=input_spec, options=json.loads(options_json))


@contextmanager
def _tracking_checked(config: SearchConfig) -> Iterator[None]:
    """Before any trial: a multi-node or remote cluster needs a tracking server."""
    check_cluster_tracking(config.tracking.uri, address=config.ray.address,
                           nodes=sum(1 for node in ray.nodes() if node.get("Alive")))
    yield


def run_search(
    config: SearchConfig,
    *,
    tracker: Tracker,
    on_progress: Callable[[Progress], None] | None = None,
    resume: bool = False,
    resume_errored: bool = False,
    overwrite: bool = False,
    checked: Preflight | None = None,
) -> SearchResult:
    """Run the whole search described by ``config``; every finished trial reaches ``tracker``.

    ``checked`` is the result of ``preflight(config)`` if the caller already ran it. The
    experiment lives in ``<output_dir>/<name>``. A new run refuses an existing one unless
    ``overwrite``; ``resume`` continues it (``resume_errored``: failed trials too):
    finished trials are kept, the searcher continues from its saved state and the tracker
    from the same parent run.
    """
    if config.mode == "weight_sharing":
        from orchestrator.weight_sharing import run_weight_sharing_search  # imports this module

        return run_weight_sharing_search(config, tracker=tracker, on_progress=on_progress,
                                         resume=resume, resume_errored=resume_errored,
                                         overwrite=overwrite)
    started = time.perf_counter()
    checked = checked or preflight(config, tracking=False)
    dataset, space, searcher = checked.dataset, checked.space, checked.searcher
    objectives = config.objective_set()
    output_dir = Path(config.output_dir).resolve()
    experiment = ExperimentDir.of(config)
    records: list[TrialRecord] = []
    confirmation: Confirmation | None = None
    interrupted = threading.Event()
    front = FrontArchive(objectives, noise_aware=config.searcher.noise_aware)

    def on_record(record: TrialRecord) -> None:
        if interrupted.is_set() and record.ok and not record.metrics:
            return  # stopped by Ctrl-C before it reported: not a finished candidate
        records.append(record)
        front.add(record)  # O(front) per record
        tracker.log_trial(record)
        summary = front.summary()
        tracker.update_front(summary)
        if on_progress is not None:
            on_progress(Progress(
                done=len(records), failed=len(records) - front.completed,
                budget=config.budget.candidates, front_size=len(summary.front),
                hypervolume=summary.hypervolume, last=record,
            ))

    if resume:
        experiment.load()  # refuses a directory that holds no earlier run
    else:
        experiment.check_new(overwrite=overwrite)
    run_id = tracker.start_search(config, resume=resume)
    experiment.save(config, run_id=run_id)
    status = "FAILED"
    try:
        with environment(TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1", RAY_AIR_NEW_OUTPUT="0",
                          TUNE_DISABLE_SIGINT_HANDLER="1",
                          TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S="60",
                          # experiment state (trials, searcher), what a resume starts from
                          TUNE_GLOBAL_CHECKPOINT_S=str(CHECKPOINT_S)), \
                ray_session(config), \
                _tracking_checked(config), \
                HardwarePool([t.target() for t in config.targets],
                             timing=config.timing.settings(),
                             measure_timeout_s=config.timing.measure_timeout_s,
                             plugins=config.plugins, **config.pool.options()) as pool:
            job = CandidateJob(
                space=config.space.name, space_options=dict(config.space.options),
                input_spec=dataset.input_spec, dataset=config.dataset.name,
                training=config.training.settings(config.seed), pool=pool.client(),
                reserved_cores=pool.reserved_cores(),
                evaluate_on_targets=any(m.startswith("accuracy@") for m in
                                        [*config.objectives, *config.constraints]),
                torch_program=any(get_backend(t.backend).needs_torch_program
                                  for t in config.targets),
                rungs=config.scheduler.rungs(config.training.epochs),
            )
            trainable = tune.with_resources(tune.with_parameters(_run_trial, job=job),
                                            config.budget.trial_resource_request())
            if resume:
                tuner = tune.Tuner.restore(experiment.path, trainable=trainable,
                                           resume_errored=resume_errored)
                _reattach(tuner, on_record, interrupted)
            else:
                tuner = tune.Tuner(
                    trainable,
                    tune_config=tune.TuneConfig(
                        search_alg=SearcherAdapter(searcher, objectives),
                        num_samples=config.budget.candidates,
                        max_concurrent_trials=config.budget.max_concurrent_trials,
                        reuse_actors=True,
                        scheduler=_scheduler(config, job.rungs),
                    ),
                    run_config=tune.RunConfig(
                        name=config.name,
                        storage_path=experiment.path.rsplit("/", 1)[0],
                        callbacks=[RecordingCallback(space.name, on_record)],
                        stop=_StopOnEvent(interrupted),
                        failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                        verbose=0,
                    ),
                )
            with _sigint_sets(interrupted):
                grid = tuner.fit()
            if resume:  # trials that had ended before this run, in Tune's order
                seen = {record.trial_id for record in records}
                for earlier in _records_from(grid, space.name):
                    if earlier.trial_id not in seen:
                        records.append(earlier)
                        tracker.log_trial(earlier)  # a no-op for a trial the tracker already has
            if config.pool.confirm.enabled and not interrupted.is_set():
                records[:], confirmation = confirm_front(
                    records, pool=pool.client(), config=config,
                    sample_shape=dataset.input_spec.shape)
        summary = summarise_front(records, objectives, noise_aware=config.searcher.noise_aware)
        if confirmation is not None:  # re-timed: the confirmed front is the search's last step
            tracker.update_front(summary)
        tracker.finish_search(records, summary)
        status = "KILLED" if interrupted.is_set() else "FINISHED" if summary.front else "FAILED"
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, keep what is logged
        status = "KILLED"
        interrupted.set()
    finally:
        tracker.end_search(status)
    if interrupted.is_set():
        raise SearchInterrupted(done=len(records), budget=config.budget.candidates,
                                experiment_path=experiment.path, run_id=run_id)
    if not summary.front:
        causes = sorted({r.error for r in records if r.error})
        raise SearchError(
            f"no candidate completed ({len(records)} failed); causes: " + "; ".join(causes[:3])
        )
    return SearchResult(records=tuple(records), summary=summary,
                        wall_seconds=time.perf_counter() - started, run_id=run_id,
                        output_dir=output_dir, experiment_dir=experiment.path,
                        confirmation=confirmation)


def _scheduler(config: SearchConfig, rungs: tuple[int, ...]) -> TrialScheduler | None:
    """Multi-objective successive halving over the rungs, or Tune's default (FIFO)."""
    if not rungs:
        return None
    rule = ParetoHalving(objectives=config.objective_set(), max_fidelity=config.training.epochs,
                         min_fidelity=rungs[0], reduction_factor=config.scheduler.reduction_factor,
                         fidelity_key=FIDELITY, rungs=rungs)
    return ParetoHalvingScheduler(rule)


def _reattach(tuner: tune.Tuner, on_record: Callable[[TrialRecord], None],
              interrupted: threading.Event) -> None:
    """The callback and the stopper come back from Tune's pickle without the driver's parts."""
    restored = tuner._local_tuner.get_run_config() if tuner._local_tuner else None
    if restored is None:
        return
    for callback in restored.callbacks or []:
        if isinstance(callback, RecordingCallback):
            callback.attach(on_record)
    if isinstance(restored.stop, _StopOnEvent):
        restored.stop.event = interrupted


def _records_from(grid: tune.ResultGrid, space_name: str) -> list[TrialRecord]:
    """Records of the trials in a Tune result grid (those a resumed run did not see end)."""
    records = []
    for index in range(len(grid)):
        result = grid[index]
        metrics = result.metrics or {}
        trial_id = metrics.get("trial_id") or _trial_id_from_path(result.path)
        arch = Architecture.from_dict(space_name, (result.config or {})["arch"])
        if result.error is not None:
            lines = str(result.error).strip().splitlines()
            records.append(TrialRecord(trial_id=trial_id, arch=arch, status="failed",
                                       error=lines[-1] if lines else "unknown error"))
        elif metrics:
            records.append(TrialRecord(
                trial_id=trial_id, arch=arch, status="completed",
                metrics=candidate_metrics(metrics),
                wall_seconds=float(metrics.get("time_total_s", 0.0)),
                started_at=float(metrics.get("timestamp", 0.0)) - float(metrics.get("time_total_s", 0.0)),
            ))
    return records


def _trial_id_from_path(path: str) -> str:
    """Tune names a trial's directory ``_run_trial_<trial id>_<index>_...``."""
    found = re.match(r"_run_trial_([0-9a-f]+(?:_[0-9]{5})?)_[0-9]+_", Path(path).name)
    if found is None:
        raise SearchError(f"cannot tell the trial id of {path}")
    return found.group(1)


class _StopOnEvent(tune.Stopper):
    """Stops the whole experiment once ``event`` is set (by Ctrl-C); trials run on otherwise."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its run config; the event is the driver's and stays behind."""
        return {"event": None}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.event is not None and self.event.is_set()


@contextmanager
def _sigint_sets(event: threading.Event) -> Iterator[None]:
    """First Ctrl-C: set ``event`` (Tune stops, finished trials are kept); second: abort."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: Any) -> None:
        event.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
