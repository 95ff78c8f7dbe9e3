"""The latency timing loop shared by every backend.

Only ``CompiledModel.run_prepared()`` (and ``synchronize()``) is inside the timed region:
inputs and outputs are bound once by ``prepare``. Samples are taken in short rounds; after
each round the loop checks whether the confidence interval of the median is narrow enough
(``rel_ci``) or the time cap (``max_seconds``) is spent. Several models can be timed in
alternating rounds (``TimingRun``), so that drifts of the device (frequency, other load)
spread over all of them instead of landing on one.

The reported latency is the median of the rounds' medians, and its interval is the
distribution-free interval of that median over the rounds. Samples within one round
are not independent (they share the device's state of that moment: its frequency, the
other processes running), so an interval over all samples pooled is far too narrow:
on a shared machine it claimed ±0.5% while two passes differed by 10-20%. Rounds are the
units that vary independently, so the interval is computed over them, and it needs at
least 6 rounds to be finite at 95% (with fewer it is the samples' min..max).

Each measurement also reports the harness floor: the same loop around a no-op, i.e. the
part of every sample that is timer and loop overhead, not inference.

One call per sample (``calls_per_sample=1``) is the default: the loop's floor is ~0.1 µs,
well under 1% of a 0.05 ms model, and the median of single calls is what latency means
(OpenVINO's ``benchmark_app`` reports the same statistic); timing K calls per sample
reports the median of K-call means instead, which moves towards the mean on skewed
distributions. ``benchmarks/pool_fidelity.py`` measures both against ``benchmark_app``.
"""

from __future__ import annotations

import functools
import gc
import math
import statistics
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

import numpy as np

from evaluators.backends.base import CompiledModel
from evaluators.errors import SettingsError
from evaluators.settings import check_integers

StopReason = Literal["precision", "time_cap", "max_runs"]


@dataclass(frozen=True, kw_only=True)
class TimingSettings:
    """How long and how precisely to time one model.

    ``warmup_runs`` untimed calls, then rounds of about ``round_seconds`` of timed calls,
    each after ``round_warmup_runs`` untimed ones (caches refill after other work).
    The minimums (``min_runs`` samples and ``min_seconds`` of timing) are always met. Then
    the loop stops as soon as the ``confidence`` interval of the median of the rounds'
    medians lies within ``± rel_ci`` of it ("precision": at least 6 rounds at 95%), once
    ``max_seconds`` of timing are spent ("time_cap", the interval is still reported), or
    at ``max_runs`` samples. A sample is the mean of ``calls_per_sample`` back-to-back
    calls (1: every call is a sample).
    """

    warmup_runs: int = 20
    min_runs: int = 30
    max_runs: int = 100_000
    min_seconds: float = 0.2
    max_seconds: float = 1.0
    rel_ci: float = 0.02
    confidence: float = 0.95
    round_seconds: float = 0.05
    round_warmup_runs: int = 2
    calls_per_sample: int = 1

    def __post_init__(self) -> None:
        check_integers(self, {"warmup_runs": 0, "min_runs": 1, "max_runs": 1, "round_warmup_runs": 0,
                              "calls_per_sample": 1})
        if self.max_runs < self.min_runs:
            raise SettingsError(f"TimingSettings.max_runs ({self.max_runs}) must be >= "
                                f"min_runs ({self.min_runs})")
        for name in ("min_seconds", "max_seconds", "round_seconds"):
            value = getattr(self, name)
            if not (_is_number(value) and 0 <= value < math.inf):
                raise SettingsError(f"TimingSettings.{name} must be a number >= 0, "
                                    f"got {value!r}")
        for name in ("rel_ci", "confidence"):
            value = getattr(self, name)
            if not (_is_number(value) and 0 < value < 1):
                raise SettingsError(f"TimingSettings.{name} must be a number in (0, 1), "
                                    f"got {value!r}")

    def scaled(self, factor: int) -> TimingSettings:
        """These settings with ``factor`` times the budget (``min_runs``, ``min_seconds``,
        ``max_seconds``): what a confirmation pass gives each model."""
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
            raise SettingsError(f"TimingSettings.scaled needs an integer factor >= 1, "
                                f"got {factor!r}")
        return replace(self, min_runs=self.min_runs * factor,
                       max_runs=max(self.max_runs, self.min_runs * factor),
                       min_seconds=self.min_seconds * factor,
                       max_seconds=self.max_seconds * factor)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class TimingStats:
    """Latency of one inference in milliseconds over ``runs`` timed samples in ``rounds``.

    ``median_ms`` is the median of the rounds' medians; ``ci_low_ms``/``ci_high_ms``
    bound it at the settings' confidence (order statistics of the round medians, no
    distribution assumed; the samples' min..max when there are too few rounds). ``p90_ms``,
    ``mean_ms``, ``min_ms``, ``max_ms`` and ``std_ms`` are over all samples. ``floor_ms`` is
    the median of the same loop around a no-op; ``stop_reason`` says why sampling ended;
    ``round_medians_ms`` are the rounds' medians in the order taken.
    """

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    runs: int
    warmup_runs: int
    ci_low_ms: float
    ci_high_ms: float
    rounds: int
    floor_ms: float
    calls_per_sample: int
    timed_seconds: float
    stop_reason: str
    round_medians_ms: tuple[float, ...] = ()


def median_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free ``confidence`` interval of the median of ``samples``.

    The interval between the order statistics x(l) and x(n+1-l), where l is the largest
    rank with P(Binomial(n, 1/2) < l) <= (1 - confidence) / 2; its coverage is at least
    ``confidence`` for any continuous distribution. With too few samples for that
    (n < 6 at 95%) it is (-inf, inf).
    """
    ordered = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(ordered)
    if n == 0:
        raise ValueError("median_interval needs at least one sample")
    rank = _lower_rank(n, (1.0 - confidence) / 2.0)
    if rank < 1:
        return -math.inf, math.inf
    return float(ordered[rank - 1]), float(ordered[n - rank])


@functools.lru_cache(maxsize=4096)
def _lower_rank(n: int, tail: float) -> int:
    """Largest l with P(Binomial(n, 1/2) <= l - 1) <= tail; exact up to n = 2000."""
    if n > 2000:  # normal approximation with continuity correction: off by one rank at most
        z = statistics.NormalDist().inv_cdf(1.0 - tail)
        return max(0, math.floor(n / 2 - z * math.sqrt(n) / 2 - 0.5) + 1)
    bound = Fraction(tail) * 2**n
    cumulative, term, rank = 0, 1, 0
    for k in range(n + 1):
        cumulative += term
        if cumulative > bound:
            break
        rank = k + 1
        term = term * (n - k) // (k + 1)
    return rank


class _Noop(CompiledModel):
    def run(self, inputs: np.ndarray) -> np.ndarray:
        return inputs

    def run_prepared(self) -> None:
        return None


def harness_floor_ms(samples: int = 2000, calls_per_sample: int = 1) -> float:
    """Median time of the timed loop around a no-op ``run_prepared`` (milliseconds)."""
    noop = _Noop()
    taken = _sample(noop, samples, calls_per_sample, deadline_ns=None)
    return float(np.median(taken)) / 1e6


def _sample(compiled: CompiledModel, limit: int, calls: int, deadline_ns: int | None
            ) -> list[float]:
    """Up to ``limit`` samples (ns per call), stopping after ``deadline_ns`` if given."""
    run, sync, clock = compiled.run_prepared, compiled.synchronize, time.perf_counter_ns
    taken: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        if calls == 1:
            while len(taken) < limit:
                start = clock()
                run()
                sync()
                end = clock()
                taken.append(end - start)
                if deadline_ns is not None and end >= deadline_ns:
                    break
        else:
            while len(taken) < limit:
                start = clock()
                for _ in range(calls):
                    run()
                sync()
                end = clock()
                taken.append((end - start) / calls)
                if deadline_ns is not None and end >= deadline_ns:
                    break
    finally:
        if gc_was_enabled:
            gc.enable()
    return taken


class TimingRun:
    """The timing of one prepared model, advanced one round at a time.

    ``round()`` until ``done`` (the first round warms up first); ``stats()`` summarises.
    Several runs can alternate rounds (see ``time_interleaved``).
    """

    def __init__(self, compiled: CompiledModel, settings: TimingSettings, *,
                 floor_ms: float) -> None:
        self._compiled = compiled
        self._settings = settings
        self._floor_ms = floor_ms
        self._samples_ns: list[float] = []
        self._round_medians_ns: list[float] = []
        self._rounds = 0
        self._timed_ns = 0
        self._stop_reason: StopReason | None = None
        self._warm = False

    @property
    def done(self) -> bool:
        return self._stop_reason is not None

    def _untimed(self, calls: int) -> None:
        for _ in range(calls):
            self._compiled.run_prepared()
        self._compiled.synchronize()

    def round(self) -> None:
        """Take one round of samples, then decide whether the measurement is finished."""
        settings = self._settings
        if not self._warm:
            self._untimed(settings.warmup_runs)
            self._warm = True
        self._untimed(settings.round_warmup_runs)
        started = time.perf_counter_ns()
        room = settings.max_runs - len(self._samples_ns)
        taken = _sample(self._compiled, room, settings.calls_per_sample,
                        deadline_ns=started + int(settings.round_seconds * 1e9))
        self._timed_ns += time.perf_counter_ns() - started
        if taken:
            self._samples_ns += taken
            self._round_medians_ns.append(float(np.median(taken)))
        self._rounds += 1
        self._stop_reason = self._should_stop()

    def _should_stop(self) -> StopReason | None:
        settings, runs = self._settings, len(self._samples_ns)
        if runs >= settings.max_runs:
            return "max_runs"
        if runs < settings.min_runs or self._timed_ns < settings.min_seconds * 1e9:
            return None
        low, high = median_interval(np.asarray(self._round_medians_ns), settings.confidence)
        median = float(np.median(self._round_medians_ns))
        if (high - low) / 2 <= settings.rel_ci * median:
            return "precision"
        if self._timed_ns >= settings.max_seconds * 1e9:
            return "time_cap"
        return None

    def stats(self) -> TimingStats:
        if not self._samples_ns:
            raise ValueError("TimingRun.stats() before any round")
        samples_ms = np.asarray(self._samples_ns, dtype=np.float64) / 1e6
        round_medians_ms = np.asarray(self._round_medians_ns, dtype=np.float64) / 1e6
        low, high = median_interval(round_medians_ms, self._settings.confidence)
        return TimingStats(
            median_ms=float(np.median(round_medians_ms)),
            p90_ms=float(np.percentile(samples_ms, 90)),
            mean_ms=float(samples_ms.mean()),
            min_ms=float(samples_ms.min()),
            max_ms=float(samples_ms.max()),
            std_ms=float(samples_ms.std()),
            runs=len(samples_ms),
            warmup_runs=self._settings.warmup_runs,
            ci_low_ms=max(low, float(samples_ms.min())),
            ci_high_ms=min(high, float(samples_ms.max())),
            rounds=self._rounds,
            floor_ms=self._floor_ms,
            calls_per_sample=self._settings.calls_per_sample,
            timed_seconds=self._timed_ns / 1e9,
            stop_reason=self._stop_reason or "",
            round_medians_ms=tuple(float(x) for x in round_medians_ms),
        )


def time_interleaved(runs: list[TimingRun]) -> None:
    """Advance ``runs`` in alternating rounds until all are done.

    An exception from one run propagates; callers that must keep the others going
    (``evaluators.benchmark.measure_interleaved``) drive the rounds themselves.
    """
    while not all(run.done for run in runs):
        for run in runs:
            if not run.done:
                run.round()


def time_model(compiled: CompiledModel, inputs: np.ndarray, settings: TimingSettings
               ) -> TimingStats:
    """Bind ``inputs`` with ``compiled.prepare`` and time ``run_prepared()`` + ``synchronize()``.

    The garbage collector is off during each round so that it does not land in a sample;
    it is turned back on (if it was on) afterwards, also when a run fails.
    """
    compiled.prepare(inputs)
    run = TimingRun(compiled, settings,
                    floor_ms=harness_floor_ms(calls_per_sample=settings.calls_per_sample))
    time_interleaved([run])
    return run.stats()
