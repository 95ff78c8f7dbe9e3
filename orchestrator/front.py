"""The Pareto front of a set of trial records (pure; no Ray, no MLflow)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from orchestrator.objectives import ObjectiveSet
from orchestrator.pareto import hypervolume, pareto_front_indices
from orchestrator.records import TrialRecord


@dataclass(frozen=True)
class FrontSummary:
    """Front members (best first by the first objective), hypervolume and its reference."""

    front: tuple[TrialRecord, ...]
    hypervolume: float
    reference: tuple[float, ...]
    feasible: int


def summarise_front(records: Sequence[TrialRecord], objectives: ObjectiveSet) -> FrontSummary:
    """Constrained Pareto front of the completed records.

    The hypervolume is taken in the minimised objective space with the reference point
    just beyond the worst completed value of each objective (10% of its range), so
    it compares runs over the same records, not across different searches.
    """
    done = [record for record in records if record.ok]
    if not done:
        return FrontSummary(front=(), hypervolume=0.0, reference=(), feasible=0)
    points = np.array([objectives.vector(record.metrics) for record in done], dtype=float)
    violations = np.array([objectives.violation(record.metrics) for record in done])
    front_index = pareto_front_indices(points, violations)
    worst, best = points.max(axis=0), points.min(axis=0)
    reference = worst + np.maximum(0.1 * (worst - best), 1e-9 * np.maximum(np.abs(worst), 1.0))
    feasible = violations == 0
    front_points = points[[i for i in front_index if feasible[i]]]
    volume = hypervolume(front_points, reference) if len(front_points) else 0.0
    ordered = sorted(front_index, key=lambda i: tuple(points[i]))
    return FrontSummary(
        front=tuple(done[i] for i in ordered),
        hypervolume=float(volume),
        reference=tuple(float(x) for x in reference),
        feasible=int(feasible.sum()),
    )
