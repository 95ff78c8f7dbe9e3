"""The front of trial records: constrained, ordered, with a hypervolume."""

from __future__ import annotations

import pytest

from orchestrator.front import summarise_front
from orchestrator.objectives import Constraint, Objective, ObjectiveSet
from orchestrator.records import TrialRecord
from search_spaces import Architecture

OBJECTIVES = ObjectiveSet((Objective("accuracy", "max"), Objective("latency_ms@cpu", "min")))


def _record(i: int, accuracy: float, latency: float, ok: bool = True) -> TrialRecord:
    return TrialRecord(
        trial_id=f"t{i}", arch=Architecture.from_dict("s", {"i": i}),
        status="completed" if ok else "failed",
        metrics={"accuracy": accuracy, "latency_ms@cpu": latency} if ok else {},
        error=None if ok else "ExportError: boom",
    )


def test_front_keeps_non_dominated_and_skips_failures() -> None:
    records = [
        _record(0, 0.90, 1.0),
        _record(1, 0.95, 2.0),
        _record(2, 0.85, 1.5),  # dominated by 0
        _record(3, 0.97, 4.0),
        _record(4, 0.0, 0.0, ok=False),
    ]
    summary = summarise_front(records, OBJECTIVES)
    assert [r.trial_id for r in summary.front] == ["t3", "t1", "t0"]  # best accuracy first
    assert summary.feasible == 4
    assert summary.hypervolume > 0


def test_constraint_excludes_infeasible_from_front() -> None:
    constrained = ObjectiveSet(OBJECTIVES.objectives, (Constraint("latency_ms@cpu", maximum=3.0),))
    records = [_record(0, 0.90, 1.0), _record(1, 0.95, 2.0), _record(3, 0.99, 4.0)]
    summary = summarise_front(records, constrained)
    assert [r.trial_id for r in summary.front] == ["t1", "t0"]
    assert summary.feasible == 2


def test_hypervolume_grows_when_a_better_point_arrives() -> None:
    base = [_record(0, 0.90, 1.0), _record(1, 0.95, 2.0), _record(2, 0.80, 3.0)]
    before = summarise_front(base, OBJECTIVES)
    after = summarise_front([*base, _record(9, 0.93, 1.0)], OBJECTIVES)
    assert before.reference == after.reference  # same worst values -> comparable
    assert after.hypervolume > before.hypervolume


def test_no_completed_trials() -> None:
    summary = summarise_front([_record(0, 0, 0, ok=False)], OBJECTIVES)
    assert summary.front == () and summary.hypervolume == pytest.approx(0.0)


def test_incremental_archive_equals_the_batch_front() -> None:
    import numpy as np

    from orchestrator.front import FrontArchive
    from orchestrator.pareto import pareto_front_indices

    rng = np.random.default_rng(0)
    values = rng.random((300, 2))
    records = [_record(i, float(a), float(b)) for i, (a, b) in enumerate(values)]
    archive = FrontArchive(OBJECTIVES)
    for record in records:
        archive.add(record)
    points = np.array([OBJECTIVES.vector(r.metrics) for r in records])
    expected = {f"t{i}" for i in pareto_front_indices(points)}
    assert {r.trial_id for r in archive.front} == expected
    assert archive.hypervolume() == pytest.approx(summarise_front(records, OBJECTIVES).hypervolume)


def test_noise_aware_front_treats_overlapping_latencies_as_ties() -> None:
    def timed(i: int, accuracy: float, latency: float, half_width: float) -> TrialRecord:
        record = _record(i, accuracy, latency)
        record.metrics.update({"latency_ci_low_ms@cpu": latency - half_width,
                               "latency_ci_high_ms@cpu": latency + half_width})
        return record

    # same accuracy, latencies 1.00 vs 1.02 measured +-0.05: a tie, both stay
    records = [timed(0, 0.9, 1.00, 0.05), timed(1, 0.9, 1.02, 0.05), timed(2, 0.8, 2.0, 0.05)]
    assert [r.trial_id for r in summarise_front(records, OBJECTIVES).front] == ["t0"]
    noisy = summarise_front(records, OBJECTIVES, noise_aware=True)
    assert {r.trial_id for r in noisy.front} == {"t0", "t1"}  # t2 is wholly slower and worse
