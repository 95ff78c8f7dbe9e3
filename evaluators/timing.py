"""The latency timing loop shared by every backend."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

import numpy as np

from evaluators.backends.base import CompiledModel
from evaluators.errors import SettingsError


@dataclass(frozen=True, kw_only=True)
class TimingSettings:
    """Untimed warm-up runs, then timed runs until both ``min_runs`` and ``min_seconds``
    are reached, at most ``max_runs``."""

    warmup_runs: int = 10
    min_runs: int = 30
    max_runs: int = 2000
    min_seconds: float = 0.2

    def __post_init__(self) -> None:
        for name, least in (("warmup_runs", 0), ("min_runs", 1), ("max_runs", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise SettingsError(f"TimingSettings.{name} must be an integer >= {least}, "
                                    f"got {value!r}")
        if self.max_runs < self.min_runs:
            raise SettingsError(f"TimingSettings.max_runs ({self.max_runs}) must be >= "
                                f"min_runs ({self.min_runs})")
        if not (isinstance(self.min_seconds, int | float) and not isinstance(self.min_seconds, bool)
                and 0 <= self.min_seconds < np.inf):
            raise SettingsError(f"TimingSettings.min_seconds must be a number >= 0, "
                                f"got {self.min_seconds!r}")


@dataclass(frozen=True)
class TimingStats:
    """Latency of one inference in milliseconds over ``runs`` timed runs."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    runs: int
    warmup_runs: int


def time_model(compiled: CompiledModel, inputs: np.ndarray, settings: TimingSettings
               ) -> TimingStats:
    """Time ``compiled.run(inputs)`` followed by ``synchronize()``, one sample per run.

    The garbage collector is off during the timed loop so that it does not land in a
    sample; it is turned back on (if it was on) afterwards.
    """
    for _ in range(settings.warmup_runs):
        compiled.run(inputs)
    compiled.synchronize()
    samples_ns: list[int] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        deadline = time.perf_counter_ns() + int(settings.min_seconds * 1e9)
        while len(samples_ns) < settings.max_runs and (
            len(samples_ns) < settings.min_runs or time.perf_counter_ns() < deadline
        ):
            start = time.perf_counter_ns()
            compiled.run(inputs)
            compiled.synchronize()
            samples_ns.append(time.perf_counter_ns() - start)
    finally:
        if gc_was_enabled:
            gc.enable()
    samples_ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return TimingStats(
        median_ms=float(np.median(samples_ms)),
        p90_ms=float(np.percentile(samples_ms, 90)),
        mean_ms=float(samples_ms.mean()),
        min_ms=float(samples_ms.min()),
        max_ms=float(samples_ms.max()),
        std_ms=float(samples_ms.std()),
        runs=len(samples_ns),
        warmup_runs=settings.warmup_runs,
    )
