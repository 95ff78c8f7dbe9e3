from __future__ import annotations

import gc
import time

import numpy as np
import pytest

from evaluators import CompiledModel, SettingsError, TimingSettings, time_model


class CountingModel(CompiledModel):
    """Counts calls and records whether the garbage collector was on during each run."""

    def __init__(self, *, sleep_seconds: float = 0.0, fail_at: int | None = None) -> None:
        self.runs = 0
        self.synchronized = 0
        self.gc_states: list[bool] = []
        self.sleep_seconds = sleep_seconds
        self.fail_at = fail_at

    def run(self, inputs: np.ndarray) -> np.ndarray:
        self.runs += 1
        if self.runs == self.fail_at:
            raise RuntimeError("device lost")
        self.gc_states.append(gc.isenabled())
        if self.sleep_seconds:
            time.sleep(self.sleep_seconds)
        return inputs

    def synchronize(self) -> None:
        self.synchronized += 1


INPUTS = np.zeros((1, 4), dtype=np.float32)


def test_warmup_runs_are_excluded_and_min_runs_reached() -> None:
    model = CountingModel()
    stats = time_model(model, INPUTS,
                       TimingSettings(warmup_runs=3, min_runs=7, max_runs=100, min_seconds=0.0))
    assert (stats.runs, stats.warmup_runs, model.runs) == (7, 3, 10)
    assert model.synchronized >= 7
    assert not any(model.gc_states[3:]) and gc.isenabled()
    assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.max_ms
    assert stats.min_ms <= stats.mean_ms <= stats.max_ms and stats.std_ms >= 0


def test_runs_until_min_seconds_but_stops_at_max_runs() -> None:
    by_time = time_model(CountingModel(sleep_seconds=0.002), INPUTS,
                         TimingSettings(warmup_runs=0, min_runs=1, min_seconds=0.02))
    assert 1 < by_time.runs < 2000
    capped = time_model(CountingModel(), INPUTS,
                        TimingSettings(warmup_runs=0, min_runs=5, max_runs=20, min_seconds=60))
    assert capped.runs == 20


def test_gc_is_reenabled_when_a_run_fails() -> None:
    with pytest.raises(RuntimeError, match="device lost"):
        time_model(CountingModel(fail_at=5), INPUTS, TimingSettings(warmup_runs=2))
    assert gc.isenabled()


@pytest.mark.parametrize(("field", "value"), [
    ("warmup_runs", -1), ("min_runs", 0), ("max_runs", 0), ("min_seconds", -0.1),
    ("min_runs", 2.5),
])
def test_bad_timing_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(SettingsError, match=rf"TimingSettings\.{field}"):
        TimingSettings(**{field: value})


def test_max_runs_below_min_runs_is_refused() -> None:
    with pytest.raises(SettingsError, match="max_runs"):
        TimingSettings(min_runs=50, max_runs=10)
