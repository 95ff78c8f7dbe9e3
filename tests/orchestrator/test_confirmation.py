"""The confirmation pass's pure parts: metric replacement, its one-line report, its config."""

from __future__ import annotations

from dataclasses import replace

from evaluators.benchmark import Measurement
from hardware_pool.worker import PoolMeasurement
from orchestrator.config import parse_config
from orchestrator.confirmation import Confirmation, _median_change, confirmed_metrics
from orchestrator.records import TrialRecord
from search_spaces import Architecture
from tests.conftest import TINY_CONFIG


def _measurement(median_ms: float) -> PoolMeasurement:
    base = Measurement(
        backend="onnxruntime", device="cpu", precision="fp32", threads=1, batch_size=1,
        compile_seconds=0.5, median_ms=median_ms, p90_ms=median_ms * 1.1, mean_ms=median_ms,
        min_ms=median_ms * 0.9, max_ms=median_ms * 2, std_ms=0.01, runs=300, warmup_runs=20,
        ci_low_ms=median_ms * 0.99, ci_high_ms=median_ms * 1.01, rounds=9, floor_ms=0.0001,
        calls_per_sample=1, timed_seconds=0.6, stop_reason="precision", runtime="onnxruntime",
        runtime_version="1", device_name="cpu", accuracy=0.5,
    )
    return PoolMeasurement(**{name: getattr(base, name) for name in base.__dataclass_fields__})


def test_confirmed_metrics_replace_latencies_and_keep_the_search_figure() -> None:
    search = {"accuracy": 0.9, "latency_ms@ort": 0.30, "latency_p90_ms@ort": 0.4,
              "runs@ort": 50.0, "accuracy@ort": 0.88, "compile_s@ort": 0.2, "params": 10.0}
    updated = confirmed_metrics(search, {"ort": _measurement(0.25)})
    assert updated["latency_ms@ort"] == 0.25 and updated["latency_search_ms@ort"] == 0.30
    assert updated["latency_p90_ms@ort"] == 0.25 * 1.1
    assert updated["runs@ort"] == 300 and updated["latency_ci_low_ms@ort"] == 0.25 * 0.99
    # accuracy and compile time are the search's; other metrics untouched
    assert updated["accuracy@ort"] == 0.88 and updated["compile_s@ort"] == 0.2
    assert updated["accuracy"] == 0.9 and updated["params"] == 10.0
    # confirming again keeps the first (search-time) figure
    again = confirmed_metrics(updated, {"ort": _measurement(0.2)})
    assert again["latency_search_ms@ort"] == 0.30 and again["latency_ms@ort"] == 0.2


def test_median_change_and_report_line() -> None:
    arch = Architecture.from_dict("mlp", {"num_layers": 1})
    records = [replace(TrialRecord(trial_id=str(i), arch=arch, status="completed"),
                       metrics={"latency_ms@ort": new, "latency_search_ms@ort": old})
               for i, (new, old) in enumerate([(0.9, 1.0), (1.1, 1.0), (1.0, 1.0)])]
    assert _median_change(records) == {"ort": 0.0}
    report = Confirmation(rounds=3, confirmed=("0", "1", "2"), unconfirmed=(),
                          front_before=("0", "1"), front_after=("0", "2"),
                          median_change={"ort": -0.05}, seconds=2.0)
    line = report.describe()
    assert "confirmed 3 front member(s) round-robin, 3x the timing budget" in line
    assert "ort -5.0%" in line and "front 2 -> 2 members (1 joined, 1 left)" in line
    failed = replace(report, error="target 'ort': gone")
    assert failed.describe().startswith("confirmation pass failed") and "gone" in failed.describe()


def test_confirmation_is_on_by_default_and_not_a_pool_option() -> None:
    config = parse_config(TINY_CONFIG)
    assert config.pool.confirm.enabled and config.pool.confirm.rounds == 3
    assert "confirm" not in config.pool.options()
    off = parse_config({**TINY_CONFIG, "pool": {"confirm": {"enabled": False, "rounds": 5}}})
    assert not off.pool.confirm.enabled and off.pool.confirm.rounds == 5
