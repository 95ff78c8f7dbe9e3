"""The confirmation pass: the final front re-timed, interleaved and with more repeats.

During the search each candidate is timed once, right after it was trained, so its
latency carries the noise of that moment. Before the front is reported, its members
are timed again on every target through the pool's ``confirm``: all members compiled at
once and timed round-robin in short rounds, each with ``pool.confirm.rounds`` times the
search's timing budget, so every member's latency (the median of its rounds' medians)
spans the same stretch of the device's time and drifts spread over all of them.
Their latency metrics are replaced by the confirmed ones; the search-time figure stays
as ``latency_search_ms@<target>``. The front is then recomputed, and a record that joins
it only now is confirmed in turn (at most ``MAX_PASSES`` passes), so the reported front
holds confirmed latencies unless a member had no ONNX model to re-time.

Both drivers call ``confirm_front`` while their hardware pool is still up, after the
last candidate ended.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.front import summarise_front
from orchestrator.objectives import target_metric
from orchestrator.records import TrialRecord
from search_spaces.errors import ParetonasError

if TYPE_CHECKING:
    from hardware_pool.pool import PoolClient
    from hardware_pool.worker import MeasureRequest, PoolMeasurement
    from orchestrator.config import SearchConfig

logger = logging.getLogger(__name__)

#: A confirmed record keeps its search-time median latency as ``latency_search_ms@<target>``.
SEARCH_LATENCY = "latency_search_ms"
#: At most this many passes (each confirms the members that joined the front in the last).
MAX_PASSES = 3
#: Per-target metrics a confirmation leaves as the search measured them.
_KEPT = frozenset({"accuracy", "compile_s"})


@dataclass(frozen=True)
class Confirmation:
    """What the confirmation pass did.

    ``confirmed``: trial ids re-timed; ``unconfirmed``: front members left with their
    search-time latencies (no ONNX model, or the pass failed: ``error``);
    ``median_change``: per target, the median of confirmed/search-time latency - 1 over
    the confirmed records.
    """

    rounds: int
    confirmed: tuple[str, ...]
    unconfirmed: tuple[str, ...]
    front_before: tuple[str, ...]
    front_after: tuple[str, ...]
    median_change: dict[str, float]
    seconds: float
    error: str = ""

    def describe(self) -> str:
        """One line for logs and the console."""
        if self.error:
            return f"confirmation pass failed, the front keeps its search-time latencies: {self.error}"
        changes = ", ".join(f"{target} {change:+.1%}" for target, change in self.median_change.items())
        before, after = set(self.front_before), set(self.front_after)
        moved = (f"front {len(before)} -> {len(after)} members ({len(after - before)} joined, "
                 f"{len(before - after)} left)" if before != after else "front unchanged")
        skipped = f"; {len(self.unconfirmed)} without an ONNX model kept" if self.unconfirmed else ""
        return (f"confirmed {len(self.confirmed)} front member(s) round-robin, {self.rounds}x the "
                f"timing budget per target ({self.seconds:.1f} s): median latency change "
                f"{changes or '-'}; {moved}{skipped}")


def confirm_front(
    records: Sequence[TrialRecord], *, pool: PoolClient, config: SearchConfig,
    sample_shape: tuple[int, ...],
) -> tuple[list[TrialRecord], Confirmation]:
    """Re-time the front of ``records`` on every target of ``pool``; return the records
    with the confirmed members' latencies replaced, and what was done.

    ``sample_shape`` is one input sample's shape (no batch). A pool error (a target
    gone, a timeout) is logged and returned in ``Confirmation.error``; the records are
    then returned as they were, so the search's results are never lost to it.
    """
    started = time.perf_counter()
    objectives, noise_aware = config.objective_set(), config.searcher.noise_aware
    rounds = config.pool.confirm.rounds
    timing = config.timing.settings()
    current = list(records)
    before = tuple(r.trial_id for r in summarise_front(current, objectives,
                                                       noise_aware=noise_aware).front)
    front = before
    confirmed: dict[str, TrialRecord] = {}
    unconfirmed: set[str] = set()
    try:
        for _ in range(MAX_PASSES):
            by_id = {r.trial_id: r for r in current}
            todo = [by_id[t] for t in front if t not in confirmed and t not in unconfirmed]
            unconfirmed.update(r.trial_id for r in todo if not _has_model(r))
            todo = [r for r in todo if _has_model(r)]
            if not todo:
                break
            requests = {r.trial_id: _request(r, config=config, sample_shape=sample_shape)
                        for r in todo}
            measured = pool.confirm(list({q.candidate: q for q in requests.values()}.values()),
                                    timing=timing, rounds=rounds)
            for record in todo:
                confirmed[record.trial_id] = replace(record, metrics=confirmed_metrics(
                    record.metrics, measured[requests[record.trial_id].candidate]))
            current = [confirmed.get(r.trial_id, r) for r in current]
            front = tuple(r.trial_id for r in summarise_front(current, objectives,
                                                              noise_aware=noise_aware).front)
    except ParetonasError as error:
        report = Confirmation(rounds=rounds, confirmed=(), unconfirmed=before, front_before=before,
                              front_after=before, median_change={},
                              seconds=time.perf_counter() - started, error=str(error))
        logger.warning("%s", report.describe())
        return list(records), report
    report = Confirmation(
        rounds=rounds, confirmed=tuple(confirmed), unconfirmed=tuple(sorted(unconfirmed & set(front))),
        front_before=before, front_after=front, median_change=_median_change(confirmed.values()),
        seconds=time.perf_counter() - started,
    )
    logger.info("%s", report.describe())
    return current, report


def confirmed_metrics(metrics: dict[str, float], measured: dict[str, PoolMeasurement]
                      ) -> dict[str, float]:
    """``metrics`` with each measured target's latency metrics replaced by ``measured``'s;
    the earlier median stays as ``latency_search_ms@<target>``."""
    updated = dict(metrics)
    for target, measurement in measured.items():
        latency = target_metric("latency_ms", target)
        if latency in metrics:
            updated.setdefault(target_metric(SEARCH_LATENCY, target), metrics[latency])
        for name, value in measurement.as_metrics().items():
            if name not in _KEPT:
                updated[target_metric(name, target)] = float(value)
        updated[latency] = measurement.median_ms
        updated[target_metric("latency_p90_ms", target)] = measurement.p90_ms
    return updated


def _median_change(records: Iterable[TrialRecord]) -> dict[str, float]:
    changes: dict[str, list[float]] = {}
    for record in records:
        for name, value in record.metrics.items():
            metric, _, target = name.partition("@")
            latency = record.metrics.get(target_metric("latency_ms", target))
            if metric == SEARCH_LATENCY and value > 0 and latency is not None:
                changes.setdefault(target, []).append(latency / value - 1)
    return {target: statistics.median(values) for target, values in changes.items()}


def _has_model(record: TrialRecord) -> bool:
    return bool(record.onnx_path) and Path(str(record.onnx_path)).is_file()


def _request(record: TrialRecord, *, config: SearchConfig, sample_shape: tuple[int, ...]
             ) -> MeasureRequest:
    """The record's model as the search measured it (an int8 target calibrates the same;
    a torch-* target gets the PyTorch program saved beside the ONNX file)."""
    from evaluators.backends.torch_backend import program_path
    from hardware_pool.worker import MeasureRequest

    onnx_path = Path(str(record.onnx_path))
    program = program_path(onnx_path)
    return MeasureRequest(record.arch.key, onnx_path.read_bytes(), tuple(sample_shape),
                          dataset=config.dataset.name, seed=config.seed,
                          torch_program=program.read_bytes() if program.is_file() else None)
