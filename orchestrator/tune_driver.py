"""Run a search as Ray Tune trials: the trainable and the loop (from-scratch mode)."""

from __future__ import annotations

import functools
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import tune

from evaluators.data import load_dataset
from hardware_pool.pool import HardwarePool
from orchestrator.candidate import (
    CandidateJob,
    evaluate_candidate,
    pin_away_from,
)
from orchestrator.config import SearchConfig
from orchestrator.errors import SearchError
from orchestrator.front import FrontSummary, summarise_front
from orchestrator.ray_session import environment, ray_session
from orchestrator.records import TrialRecord
from orchestrator.searchers import create_searcher
from orchestrator.tracking import Tracker, check_cluster_tracking
from orchestrator.trial_events import RecordingCallback
from orchestrator.tune_adapter import SearcherAdapter
from search_spaces import InputSpec, SearchSpace, create_space


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
) -> SearchResult:
    """Run the whole search described by ``config``; every finished trial reaches ``tracker``."""
    if config.mode == "weight_sharing":
        from orchestrator.weight_sharing import run_weight_sharing_search  # imports this module

        return run_weight_sharing_search(config, tracker=tracker, on_progress=on_progress,
                                         resume=resume)
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
        summary = summarise_front(records, objectives)
        tracker.update_front(summary)
        if on_progress is not None:
            on_progress(Progress(
                done=len(records), failed=sum(not r.ok for r in records),
                budget=config.budget.candidates, front_size=len(summary.front),
                hypervolume=summary.hypervolume, last=record,
            ))

    run_id = tracker.start_search(config, resume=resume)
    status = "FAILED"
    try:
        with environment(TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1", RAY_AIR_NEW_OUTPUT="0",
                          TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S="60"), \
                ray_session(config), \
                _tracking_checked(config), \
                HardwarePool([t.target() for t in config.targets],
                             timing=config.timing.settings(),
                             measure_timeout_s=config.timing.measure_timeout_s,
                             **config.pool.options()) as pool:
            job = CandidateJob(
                space=config.space.name, space_options=dict(config.space.options),
                input_spec=dataset.input_spec, dataset=config.dataset.name,
                training=config.training.settings(config.seed), pool=pool.client(),
                reserved_cores=pool.reserved_cores(),
                evaluate_on_targets=any(m.startswith("accuracy@") for m in
                                        [*config.objectives, *config.constraints]),
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
                    callbacks=[RecordingCallback(space.name, on_record)],
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
