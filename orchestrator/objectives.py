"""Objectives and constraints: metric names, directions, and the minimised vectors."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Direction = Literal["min", "max"]

#: Metrics measured once per candidate.
CANDIDATE_METRICS = ("accuracy", "params", "onnx_mb")
#: Metrics measured on each target, named ``<metric>@<target>``; ``accuracy@<target>`` is
#: the compiled (e.g. int8) model's own accuracy, measured when the pool is given
#: held-out samples.
TARGET_METRICS = (
    "latency_ms", "latency_p90_ms", "latency_ci_low_ms", "latency_ci_high_ms", "accuracy",
)


def target_metric(metric: str, target: str) -> str:
    return f"{metric}@{target}"


def interval_metrics(metric: str) -> tuple[str, str] | None:
    """The metrics bounding ``metric``'s measurement, if it has any.

    ``latency_ms@<t>`` is bounded by ``latency_ci_low_ms@<t>`` and ``latency_ci_high_ms@<t>``.
    """
    name, at, target = metric.partition("@")
    if name != "latency_ms" or not at:
        return None
    return target_metric("latency_ci_low_ms", target), target_metric("latency_ci_high_ms", target)


def known_metrics(targets: Sequence[str]) -> list[str]:
    """Every metric name an objective or constraint may use with these targets."""
    return [*CANDIDATE_METRICS, *(target_metric(m, t) for t in targets for m in TARGET_METRICS)]


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: Direction

    def minimised(self, value: float) -> float:
        return -value if self.direction == "max" else value


@dataclass(frozen=True)
class Constraint:
    """``metric`` must stay within [minimum, maximum] (either bound optional)."""

    metric: str
    minimum: float | None = None
    maximum: float | None = None

    def violation(self, value: float) -> float:
        """0 when satisfied, else the relative amount by which the bound is missed."""
        excess = 0.0
        if self.maximum is not None and value > self.maximum:
            excess += (value - self.maximum) / max(abs(self.maximum), 1e-12)
        if self.minimum is not None and value < self.minimum:
            excess += (self.minimum - value) / max(abs(self.minimum), 1e-12)
        return excess

    def describe(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f"{self.metric} >= {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"{self.metric} <= {self.maximum:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class ObjectiveSet:
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()

    @property
    def names(self) -> list[str]:
        return [objective.metric for objective in self.objectives]

    def vector(self, metrics: Mapping[str, float]) -> list[float]:
        """The minimised objective vector of one candidate's metrics."""
        values = []
        for objective in self.objectives:
            value = float(metrics[objective.metric])
            if not math.isfinite(value):
                raise ValueError(f"objective {objective.metric} is {value}")
            values.append(objective.minimised(value))
        return values

    def intervals(self, metrics: Mapping[str, float]) -> tuple[list[float], list[float]]:
        """Minimised (low, high) bounds of the objective vector; exact where none is measured."""
        point = self.vector(metrics)
        low, high = list(point), list(point)
        for i, objective in enumerate(self.objectives):
            names = interval_metrics(objective.metric)
            if names is None or not all(name in metrics for name in names):
                continue
            a, b = (objective.minimised(float(metrics[name])) for name in names)
            low[i], high[i] = min(a, b, point[i]), max(a, b, point[i])
        return low, high

    def violation(self, metrics: Mapping[str, float]) -> float:
        return sum(c.violation(float(metrics[c.metric])) for c in self.constraints)
