"""The Pareto front of trial records (pure; no Ray, no MLflow).

``FrontArchive`` keeps the constrained front as records arrive, at O(front) cost per
record, and computes the hypervolume only when asked; ``summarise_front`` does the same
for a finished list of records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from orchestrator.objectives import ObjectiveSet
from orchestrator.pareto import hypervolume
from orchestrator.records import TrialRecord


@dataclass(frozen=True)
class FrontSummary:
    """Front members (best first by the first objective), hypervolume and its reference."""

    front: tuple[TrialRecord, ...]
    hypervolume: float
    reference: tuple[float, ...]
    feasible: int


@dataclass(frozen=True)
class _Entry:
    record: TrialRecord
    point: np.ndarray
    low: np.ndarray
    high: np.ndarray
    violation: float


class FrontArchive:
    """The constrained Pareto front of the completed records added so far.

    Feasible records beat infeasible ones; among infeasible ones the least violation
    wins; among feasible ones Pareto dominance decides, noise-aware if ``noise_aware``
    (a latency difference inside the measured intervals, ``latency_ci_low_ms@<t>`` ..
    ``latency_ci_high_ms@<t>``, is a tie). ``add`` compares with the front only.
    """

    def __init__(self, objectives: ObjectiveSet, *, noise_aware: bool = False) -> None:
        self.objectives = objectives
        self.noise_aware = noise_aware
        self._front: list[_Entry] = []
        self._worst: np.ndarray | None = None
        self._best: np.ndarray | None = None
        self.completed = 0
        self.feasible = 0

    def __len__(self) -> int:
        return len(self._front)

    def add(self, record: TrialRecord) -> bool:
        """Insert a record; True if it joined the front. Failed records are ignored."""
        if not record.ok:
            return False
        point = np.array(self.objectives.vector(record.metrics), dtype=float)
        low, high = ((np.array(b, dtype=float) for b in self.objectives.intervals(record.metrics))
                     if self.noise_aware else (point, point))
        entry = _Entry(record, point, low, high, self.objectives.violation(record.metrics))
        self.completed += 1
        self.feasible += entry.violation == 0
        self._worst = point if self._worst is None else np.maximum(self._worst, point)
        self._best = point if self._best is None else np.minimum(self._best, point)
        if any(self._beats(kept, entry) for kept in self._front):
            return False
        self._front = [kept for kept in self._front if not self._beats(entry, kept)]
        self._front.append(entry)
        return True

    def extend(self, records: Iterable[TrialRecord]) -> None:
        for record in records:
            self.add(record)

    @property
    def front(self) -> tuple[TrialRecord, ...]:
        """Front records, ordered by their objective vectors (first objective first)."""
        ordered = sorted(self._front, key=lambda e: tuple(e.point))
        return tuple(entry.record for entry in ordered)

    def reference(self) -> np.ndarray:
        """Just beyond the worst completed value of each objective (10% of its range)."""
        if self._worst is None or self._best is None:
            return np.empty(0)
        worst, best = self._worst, self._best
        return worst + np.maximum(0.1 * (worst - best), 1e-9 * np.maximum(np.abs(worst), 1.0))

    def hypervolume(self) -> float:
        """Hypervolume of the feasible front w.r.t. ``reference()`` (computed on demand)."""
        points = [e.point for e in self._front if e.violation == 0]
        return float(hypervolume(np.array(points), self.reference())) if points else 0.0

    def summary(self) -> FrontSummary:
        if not self.completed:
            return FrontSummary(front=(), hypervolume=0.0, reference=(), feasible=0)
        return FrontSummary(front=self.front, hypervolume=self.hypervolume(),
                            reference=tuple(float(x) for x in self.reference()),
                            feasible=int(self.feasible))

    def _beats(self, a: _Entry, b: _Entry) -> bool:
        if a.violation > 0 or b.violation > 0:
            return a.violation < b.violation
        if self.noise_aware:
            return bool(not np.any(b.high < a.low) and np.any(a.high < b.low))
        return bool(np.all(a.point <= b.point) and np.any(a.point < b.point))


def summarise_front(records: Sequence[TrialRecord], objectives: ObjectiveSet, *,
                    noise_aware: bool = False) -> FrontSummary:
    """Constrained Pareto front of the completed records.

    The hypervolume is taken in the minimised objective space with the reference point
    just beyond the worst completed value of each objective (10% of its range), so
    it compares runs over the same records, not across different searches.
    """
    archive = FrontArchive(objectives, noise_aware=noise_aware)
    archive.extend(records)
    return archive.summary()
