"""Run a search (default: the quickstart) and report orchestration overhead per trial.

Overhead of a trial = its wall time seen by the driver (Tune start -> result recorded)
minus the time the trial spent working (build, data, train, export, measure). Prints a
table and writes JSON to benchmarks/results/.

    .venv/bin/python benchmarks/quickstart_overhead.py [CONFIG] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from orchestrator.config import load_config, parse_override
from orchestrator.tracking import MlflowTracker
from orchestrator.tune_driver import run_search

ROOT = Path(__file__).resolve().parents[1]
WORK_STAGES = ("build", "data", "train", "export", "measure")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "configs" / "quickstart.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="paretonas-bench-") as tmp:
        overrides = dict(map(parse_override, args.overrides))
        overrides.setdefault("tracking.uri", f"sqlite:///{tmp}/mlflow.db")
        overrides.setdefault("output_dir", f"{tmp}/results")
        config = load_config(args.config, overrides=overrides)
        tracker = MlflowTracker(uri=config.tracking.uri, experiment="benchmark")
        started = time.perf_counter()
        result = run_search(config, tracker=tracker)
        wall = time.perf_counter() - started

    done = [r for r in result.records if r.ok]
    stage_medians = {
        stage: statistics.median(r.metrics[f"time_{stage}_s"] for r in done)
        for stage in WORK_STAGES
    }
    overheads = [
        r.wall_seconds - sum(r.metrics[f"time_{stage}_s"] for stage in WORK_STAGES) for r in done
    ]
    report = {
        "config": str(args.config),
        "wall_s": wall,
        "candidates": len(result.records),
        "completed": len(done),
        "front_size": len(result.summary.front),
        "trial_wall_median_s": statistics.median(r.wall_seconds for r in done),
        "overhead_median_s": statistics.median(overheads),
        "overhead_p90_s": sorted(overheads)[int(0.9 * (len(overheads) - 1))],
        "overhead_target_s": 0.3,
        "stage_median_s": stage_medians,
        "fixed_cost_s": wall - sum(r.wall_seconds for r in result.records),
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
