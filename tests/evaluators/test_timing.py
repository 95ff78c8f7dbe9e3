from __future__ import annotations

import gc
import time

import numpy as np
import pytest

from evaluators import (
    CompiledModel,
    SettingsError,
    TimingRun,
    TimingSettings,
    harness_floor_ms,
    median_interval,
    time_model,
)


class CountingModel(CompiledModel):
    """Counts calls; records whether the garbage collector was on during each call.

    Each call busy-waits ``spin_us`` microseconds, or a uniform random 0..``spread_us``
    (seeded) on top, so that latencies are real and their spread known.
    """

    def __init__(self, *, spin_us: float = 0.0, spread_us: float = 0.0,
                 fail_at: int | None = None) -> None:
        self.runs = 0
        self.prepared = 0
        self.synchronized = 0
        self.gc_states: list[bool] = []
        self.spin_us = spin_us
        self.spread_us = spread_us
        self.fail_at = fail_at
        self.rng = np.random.default_rng(0)

    def run(self, inputs: np.ndarray) -> np.ndarray:
        self.runs += 1
        if self.runs == self.fail_at:
            raise RuntimeError("device lost")
        self.gc_states.append(gc.isenabled())
        wait_us = self.spin_us + (self.rng.uniform(0, self.spread_us) if self.spread_us else 0)
        if wait_us:
            until = time.perf_counter_ns() + int(wait_us * 1e3)
            while time.perf_counter_ns() < until:
                pass
        return inputs

    def prepare(self, inputs: np.ndarray) -> None:
        self.prepared += 1
        super().prepare(inputs)

    def synchronize(self) -> None:
        self.synchronized += 1


INPUTS = np.zeros((1, 4), dtype=np.float32)
EXACT = {"min_seconds": 0.0, "round_warmup_runs": 0}


def test_warmup_runs_are_excluded_and_inputs_prepared_once() -> None:
    model = CountingModel()
    stats = time_model(model, INPUTS,
                       TimingSettings(warmup_runs=3, min_runs=7, max_runs=7, **EXACT))
    assert (stats.runs, stats.warmup_runs, model.runs, model.prepared) == (7, 3, 10, 1)
    assert stats.stop_reason == "max_runs" and stats.rounds >= 1
    assert model.synchronized >= 7
    assert not any(model.gc_states[3:]) and gc.isenabled()
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.max_ms
    assert stats.min_ms <= stats.mean_ms <= stats.max_ms and stats.std_ms >= 0
    assert stats.min_ms <= stats.ci_low_ms <= stats.median_ms <= stats.ci_high_ms <= stats.max_ms


def test_each_round_starts_with_untimed_calls() -> None:
    """round_seconds=0: one sample per round, each after two untimed calls."""
    model = CountingModel()
    stats = time_model(model, INPUTS, TimingSettings(
        warmup_runs=3, min_runs=5, max_runs=5, min_seconds=0.0, round_seconds=0.0,
        round_warmup_runs=2))
    assert (stats.runs, stats.rounds, model.runs) == (5, 5, 3 + 5 * 2 + 5)


def test_calls_per_sample_times_k_calls_per_sample() -> None:
    model = CountingModel()
    stats = time_model(model, INPUTS, TimingSettings(
        warmup_runs=0, min_runs=6, max_runs=6, calls_per_sample=4, **EXACT))
    assert (stats.runs, stats.calls_per_sample, model.runs) == (6, 4, 24)


def test_runs_until_min_seconds_but_stops_at_max_runs() -> None:
    by_time = time_model(CountingModel(spin_us=2000), INPUTS,
                         TimingSettings(warmup_runs=0, min_runs=1, min_seconds=0.02, rel_ci=0.5))
    assert by_time.runs > 1 and by_time.timed_seconds >= 0.02
    capped = time_model(CountingModel(), INPUTS,
                        TimingSettings(warmup_runs=0, min_runs=5, max_runs=20, min_seconds=60))
    assert capped.runs == 20 and capped.stop_reason == "max_runs"


def test_adaptive_loop_stops_on_precision() -> None:
    """A steady 300 µs call: a ±25% interval is reached long before the 60 s cap."""
    stats = time_model(CountingModel(spin_us=300), INPUTS, TimingSettings(
        warmup_runs=2, min_runs=10, min_seconds=0.0, max_seconds=60, rel_ci=0.25,
        round_seconds=0.01))
    assert stats.stop_reason == "precision"
    assert (stats.ci_high_ms - stats.ci_low_ms) / 2 <= 0.25 * stats.median_ms


def test_adaptive_loop_stops_at_the_time_cap() -> None:
    """Uniform 0..1 ms calls never reach ±0.1% in 0.1 s; the cap ends the loop."""
    stats = time_model(CountingModel(spread_us=1000), INPUTS, TimingSettings(
        warmup_runs=0, min_runs=5, min_seconds=0.0, max_seconds=0.1, rel_ci=0.001,
        round_seconds=0.02))
    assert stats.stop_reason == "time_cap" and stats.timed_seconds >= 0.1
    assert stats.rounds >= 2 and stats.ci_low_ms < stats.median_ms < stats.ci_high_ms


def test_median_and_interval_come_from_the_rounds_medians() -> None:
    """Calls steady within a round, 100..170 µs from round to round (as when the machine's
    state moves): the interval must span the rounds' spread, not the pooled samples'."""
    model = CountingModel()
    model.prepare(INPUTS)
    run = TimingRun(model, TimingSettings(warmup_runs=0, min_runs=1, max_runs=10**6,
                                          min_seconds=60, round_seconds=0.005), floor_ms=0.0)
    levels_us = [100, 160, 110, 170, 120, 130, 150, 140]
    for level in levels_us:
        model.spin_us = level
        run.round()
    stats = run.stats()
    assert stats.rounds == len(levels_us) and not run.done
    # 8 rounds at 95%: the interval is the lowest and highest round median
    assert stats.ci_low_ms < 0.105 and stats.ci_high_ms > 0.165
    assert 0.12 <= stats.median_ms <= 0.15  # the median round is 130..140 µs
    pooled_low, pooled_high = median_interval(
        np.repeat(np.asarray(levels_us, dtype=float) / 1e3, stats.runs // len(levels_us)))
    assert pooled_high - pooled_low < (stats.ci_high_ms - stats.ci_low_ms) / 3


def test_precision_needs_enough_rounds_for_an_interval() -> None:
    """At 95% an interval needs 6 rounds: a steady call still runs 6 of them."""
    stats = time_model(CountingModel(spin_us=50), INPUTS, TimingSettings(
        warmup_runs=0, min_runs=1, min_seconds=0.0, max_seconds=60, rel_ci=0.5,
        round_seconds=0.002))
    assert stats.stop_reason == "precision" and stats.rounds == 6


def test_floor_is_reported_and_below_a_real_call() -> None:
    floor = harness_floor_ms()
    stats = time_model(CountingModel(spin_us=200), INPUTS, TimingSettings(
        warmup_runs=2, min_runs=20, min_seconds=0.0))
    assert floor > 0 and 0 < stats.floor_ms < stats.median_ms


def test_gc_is_reenabled_when_a_run_fails() -> None:
    with pytest.raises(RuntimeError, match="device lost"):
        time_model(CountingModel(fail_at=5), INPUTS, TimingSettings(warmup_runs=2))
    assert gc.isenabled()


def test_median_interval_contains_the_median_and_narrows_with_more_runs() -> None:
    rng = np.random.default_rng(1)
    widths = []
    for n in (20, 200, 2000):
        samples = rng.lognormal(0.0, 0.5, size=n)
        low, high = median_interval(samples)
        assert low <= np.median(samples) <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]


def test_median_interval_covers_the_true_median_at_its_confidence() -> None:
    """Exponential(1) has median ln 2; a 95% interval must cover it about 95% of the time."""
    rng = np.random.default_rng(2)
    covered = [low <= np.log(2) <= high
               for low, high in (median_interval(rng.exponential(size=25)) for _ in range(400))]
    assert 0.93 <= np.mean(covered) <= 0.995


def test_median_interval_is_unbounded_for_too_few_samples() -> None:
    assert median_interval(np.arange(5.0)) == (-np.inf, np.inf)
    low, high = median_interval(np.arange(6.0))  # 1 - 2/64 > 95%: min and max
    assert (low, high) == (0.0, 5.0)


@pytest.mark.parametrize(("field", "value"), [
    ("warmup_runs", -1), ("min_runs", 0), ("max_runs", 0), ("min_seconds", -0.1),
    ("min_runs", 2.5), ("max_seconds", -1), ("rel_ci", 0), ("rel_ci", 1.5),
    ("confidence", 1.0), ("round_seconds", float("inf")), ("calls_per_sample", 0),
    ("round_warmup_runs", -1),
])
def test_bad_timing_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(SettingsError, match=rf"TimingSettings\.{field}"):
        TimingSettings(**{field: value})


def test_max_runs_below_min_runs_is_refused() -> None:
    with pytest.raises(SettingsError, match="max_runs"):
        TimingSettings(min_runs=50, max_runs=10)


def test_scaled_settings_multiply_the_budget() -> None:
    base = TimingSettings(min_runs=30, max_runs=50, min_seconds=0.2, max_seconds=1.0)
    scaled = base.scaled(3)
    assert (scaled.min_runs, scaled.max_runs, scaled.min_seconds, scaled.max_seconds) == (
        90, 90, pytest.approx(0.6), 3.0)
    assert scaled.rel_ci == base.rel_ci and base.scaled(1) == base
    with pytest.raises(SettingsError, match="factor >= 1"):
        base.scaled(0)
