"""Run a search (default: the quickstart) and report orchestration overhead per trial.

Two views of the overhead, both from one run:
- in-trial: a trial's wall time seen by the driver (Tune start -> result recorded) minus
  the time it spent working (build, data, train, export, measure); median over trials.
- amortised: (first trial start -> last trial end) minus all trials' work, divided by
  the number of trials; this also counts Tune's scheduling gaps between trials (exact
  for max_concurrent_trials = 1, the quickstart's setting).
Start-up (Ray, the hardware pool, the first worker) is reported apart. Prints a table
and writes JSON to benchmarks/results/.

    .venv/bin/python benchmarks/quickstart_overhead.py [CONFIG] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from orchestrator.candidate import STAGES, stage_time_key
from orchestrator.config import load_config, parse_override
from orchestrator.tracking import MlflowTracker
from orchestrator.tune_driver import run_search

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "configs" / "quickstart.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory(prefix="paretonas-bench-") as tmp:
        overrides = dict(map(parse_override, args.overrides))
        overrides.setdefault("tracking.uri", f"sqlite:///{tmp}/mlflow.db")
        overrides.setdefault("output_dir", f"{tmp}/results")
        config = load_config(args.config, overrides=overrides)
        tracker = MlflowTracker(uri=config.tracking.uri, experiment="benchmark")
        started, started_epoch = time.perf_counter(), time.time()
        result = run_search(config, tracker=tracker)
        wall = time.perf_counter() - started

    done = [r for r in result.records if r.ok]
    stage_medians = {
        stage: statistics.median(r.metrics[stage_time_key(stage)] for r in done)
        for stage in STAGES
    }
    work = [sum(r.metrics[stage_time_key(stage)] for stage in STAGES) for r in done]
    overheads = [r.wall_seconds - w for r, w in zip(done, work, strict=True)]
    first_start = min(r.started_at for r in result.records)
    last_end = max(r.started_at + r.wall_seconds for r in result.records)
    report = {
        "config": str(args.config),
        "wall_s": wall,
        "candidates": len(result.records),
        "completed": len(done),
        "front_size": len(result.summary.front),
        "trial_wall_median_s": statistics.median(r.wall_seconds for r in done),
        "overhead_in_trial_median_s": statistics.median(overheads),
        "overhead_in_trial_p90_s": sorted(overheads)[int(0.9 * (len(overheads) - 1))],
        "overhead_amortised_s": (last_end - first_start - sum(work)) / len(done),
        "overhead_target_s": 0.3,
        "startup_s": first_start - started_epoch,
        "stage_median_s": stage_medians,
    }
    table = Table(title="paretonas quickstart benchmark")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in report.items():
        if isinstance(value, dict):
            for stage, seconds in value.items():
                table.add_row(f"  median {stage} s", f"{seconds:.3f}")
        else:
            table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    Console().print(table)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"quickstart-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
