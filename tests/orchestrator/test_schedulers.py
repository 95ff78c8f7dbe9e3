"""Multi-objective successive halving: promotion by non-dominated rank at each rung."""

from __future__ import annotations

import pytest

from orchestrator.errors import ConfigError
from orchestrator.objectives import Objective, ObjectiveSet
from orchestrator.schedulers import ParetoHalving, ParetoHalvingScheduler

OBJECTIVES = ObjectiveSet((Objective("accuracy", "max"), Objective("latency_ms@cpu", "min")))


def test_rungs_follow_the_reduction_factor() -> None:
    rule = ParetoHalving(objectives=OBJECTIVES, max_fidelity=27, reduction_factor=3)
    assert [r.fidelity for r in rule.rungs] == [1, 3, 9]
    with pytest.raises(ConfigError, match="reduction_factor must be > 1"):
        ParetoHalving(objectives=OBJECTIVES, max_fidelity=9, reduction_factor=1)


def test_dominated_trials_stop_and_the_front_goes_on() -> None:
    rule = ParetoHalving(objectives=OBJECTIVES, max_fidelity=9, reduction_factor=3)
    report = {"training_iteration": 1}
    # the first arrivals continue: nothing better is known yet
    assert rule.decide("a", {**report, "accuracy": 0.8, "latency_ms@cpu": 2.0}) == "continue"
    assert rule.decide("b", {**report, "accuracy": 0.5, "latency_ms@cpu": 3.0}) == "stop"
    assert rule.decide("c", {**report, "accuracy": 0.9, "latency_ms@cpu": 1.0}) == "continue"
    # 4th: the top ceil(4/3) = 2 by rank go on (c, then a); d is dominated by both
    assert rule.decide("d", {**report, "accuracy": 0.7, "latency_ms@cpu": 2.5}) == "stop"
    assert rule.decide("e", {**report, "accuracy": 0.85, "latency_ms@cpu": 1.5}) == "continue"
    # between rungs nothing is decided
    assert rule.decide("b", {"training_iteration": 2, "accuracy": 0.1}) == "continue"


def test_only_the_objectives_known_at_a_rung_count() -> None:
    rule = ParetoHalving(objectives=OBJECTIVES, max_fidelity=9, reduction_factor=3)
    # latency is measured only at the end: the rung compares accuracy alone
    assert rule.decide("a", {"training_iteration": 1, "accuracy": 0.6}) == "continue"
    assert rule.decide("b", {"training_iteration": 1, "accuracy": 0.4}) == "stop"
    assert rule.decide("c", {"training_iteration": 1, "accuracy": 0.7}) == "continue"
    assert rule.decide("x", {"training_iteration": 1, "loss": 0.7}) == "continue"


def test_tune_scheduler_speaks_tune_decisions() -> None:
    from ray.tune.experiment import Trial

    scheduler = ParetoHalvingScheduler(
        ParetoHalving(objectives=OBJECTIVES, max_fidelity=9, reduction_factor=3))
    good, bad = Trial("fn", trial_id="good", stub=True), Trial("fn", trial_id="bad", stub=True)
    result = {"training_iteration": 1, "latency_ms@cpu": 1.0}
    assert scheduler.on_trial_result(None, good, {**result, "accuracy": 0.9}) == "CONTINUE"
    assert scheduler.on_trial_result(None, bad, {**result, "accuracy": 0.1}) == "STOP"
