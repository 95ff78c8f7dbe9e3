"""Multi-objective successive halving for from-scratch training (asynchronous, ASHA-style).

Trials report after each epoch. At each rung (``min_fidelity * reduction_factor**k``
epochs) a trial continues only if it is in the best ``1 / reduction_factor`` of the
results recorded at that rung, ordered by constrained non-dominated rank and then
crowding distance on the objectives known at that rung (e.g. accuracy before any
latency is measured). Ray Tune's own schedulers rank by one metric only.
``ParetoHalving`` is the pure decision rule; ``ParetoHalvingScheduler`` presents it to
Ray Tune as a ``TrialScheduler``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from orchestrator.errors import ConfigError
from orchestrator.objectives import ObjectiveSet
from orchestrator.pareto import crowding_distance, non_dominated_sort

Decision = Literal["continue", "stop"]


@dataclass
class _Rung:
    fidelity: float
    results: dict[str, tuple[tuple[float, ...], float]] = field(default_factory=dict)


class ParetoHalving:
    """Decides, per reported result, whether a trial goes on to the next rung."""

    def __init__(self, *, objectives: ObjectiveSet, max_fidelity: float,
                 min_fidelity: float = 1, reduction_factor: float = 3,
                 fidelity_key: str = "training_iteration",
                 rungs: Sequence[float] | None = None) -> None:
        """``rungs``: the fidelities to decide at, when they are not the geometric series."""
        if not min_fidelity > 0 or not max_fidelity >= min_fidelity:
            raise ConfigError(f"need 0 < min_fidelity <= max_fidelity, got {min_fidelity} and "
                              f"{max_fidelity}")
        if not reduction_factor > 1:
            raise ConfigError(f"reduction_factor must be > 1, got {reduction_factor}")
        self.objectives = objectives
        self.fidelity_key = fidelity_key
        self.reduction_factor = float(reduction_factor)
        count = int(math.floor(math.log(max_fidelity / min_fidelity, reduction_factor) + 1e-9))
        self.rungs = [_Rung(min_fidelity * reduction_factor**k) for k in range(count)
                      if min_fidelity * reduction_factor**k < max_fidelity]
        if rungs is not None:
            self.rungs = [_Rung(float(rung)) for rung in rungs]

    def decide(self, trial_id: str, result: Mapping[str, Any]) -> Decision:
        fidelity = result.get(self.fidelity_key)
        if fidelity is None:
            return "continue"
        rung = next((r for r in self.rungs if math.isclose(float(fidelity), r.fidelity)), None)
        known = [o for o in self.objectives.objectives if o.metric in result]
        if rung is None or not known:
            return "continue"
        point = tuple(o.minimised(float(result[o.metric])) for o in known)
        constraints = [c for c in self.objectives.constraints if c.metric in result]
        violation = sum(c.violation(float(result[c.metric])) for c in constraints)
        rung.results[trial_id] = (point, violation)
        return "continue" if self._in_top(rung, trial_id, len(point)) else "stop"

    def _in_top(self, rung: _Rung, trial_id: str, width: int) -> bool:
        ids = [t for t, (p, _) in rung.results.items() if len(p) == width]
        points = np.array([rung.results[t][0] for t in ids])
        violations = np.array([rung.results[t][1] for t in ids])
        order: list[int] = []
        for front in non_dominated_sort(points, violations):
            crowding = crowding_distance(points[front])
            order += [int(front[i]) for i in np.argsort(-crowding, kind="stable")]
        keep = max(1, math.ceil(len(ids) / self.reduction_factor))
        return ids.index(trial_id) in order[:keep]


class ParetoHalvingScheduler(FIFOScheduler):
    """Ray Tune ``TrialScheduler`` running ``ParetoHalving`` on each trial's results."""

    def __init__(self, rule: ParetoHalving) -> None:
        super().__init__()
        self.rule = rule

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = self.rule.decide(trial.trial_id, result)
        return TrialScheduler.STOP if decision == "stop" else TrialScheduler.CONTINUE
