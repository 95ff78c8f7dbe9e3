"""Tracking cost on the driver per candidate, and how long MLflow takes to catch up.

Feeds N synthetic candidates (real ONNX file, random metrics; default 240 = 10x the
quickstart) through ``MlflowTracker`` exactly as the driver does (``log_trial`` then
``update_front``) and reports, per candidate, the driver-side time of the tracker calls
(journal line + fsync + queue put) in the first and last tenth of the search (constant
means O(1)), the front summary's time, and the background writer's time to drain
everything into the store. Prints a table and writes JSON to benchmarks/results/.

    .venv/bin/python benchmarks/tracking_overhead.py [--candidates 240] [--uri URI]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from evaluators.export import export_onnx
from orchestrator.config import parse_config
from orchestrator.front import FrontArchive
from orchestrator.records import TrialRecord
from orchestrator.tracking import MlflowTracker
from search_spaces import Architecture
from tests.conftest import TINY_CONFIG
from tests.evaluators.models import tiny_conv_net

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=240)
    parser.add_argument("--uri", default=None, help="tracking URI (default: a fresh sqlite file)")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="paretonas-track-bench-") as tmp:
        data = copy.deepcopy(TINY_CONFIG)
        data["tracking"] = {"uri": args.uri or f"sqlite:///{tmp}/mlflow.db",
                            "experiment": "tracking-benchmark", "drain_timeout_s": 3600}
        data["output_dir"] = f"{tmp}/results"
        config = parse_config(data)
        onnx = export_onnx(tiny_conv_net(), example_input=torch.zeros(1, 1, 8, 8),
                           path=Path(tmp, "m.onnx"), candidate="bench")
        tracker = MlflowTracker.from_config(config)
        started = time.perf_counter()
        tracker.start_search(config)
        start_s = time.perf_counter() - started
        records: list[TrialRecord] = []
        archive = FrontArchive(config.objective_set())
        calls, fronts = [], []
        for index in range(args.candidates):
            latency = float(rng.uniform(0.02, 0.2))
            accuracy = float(np.clip(0.8 + 0.8 * latency + rng.normal(0, 0.03), 0, 1))
            record = TrialRecord(
                f"trial_{index:05d}", Architecture.from_dict("bench", {"index": index}), "completed",
                {"accuracy": accuracy, "latency_ms@cpu-ort": latency,
                 "latency_ms@cpu-openvino": latency * 1.3, "params": float(rng.integers(1e3, 1e5))},
                wall_seconds=1.0, started_at=time.time(), onnx_path=str(onnx))
            records.append(record)
            tick = time.perf_counter()
            archive.add(record)  # as the driver keeps its front
            summary = archive.summary()
            fronts.append(time.perf_counter() - tick)
            tick = time.perf_counter()
            tracker.log_trial(record)
            tracker.update_front(summary)
            calls.append(time.perf_counter() - tick)
        loop_done = time.perf_counter()
        tracker.finish_search(records, archive.summary())
        finish_s = time.perf_counter() - loop_done
        tracker.end_search("FINISHED")
        drain_s = time.perf_counter() - loop_done
        front_size = len(archive.front)

    tenth = max(args.candidates // 10, 1)
    results = {
        "candidates": args.candidates,
        "front_size": front_size,
        "start_search_s": start_s,
        "tracker_calls_ms_first_tenth": 1e3 * statistics.median(calls[:tenth]),
        "tracker_calls_ms_last_tenth": 1e3 * statistics.median(calls[-tenth:]),
        "front_summary_ms_first_tenth": 1e3 * statistics.median(fronts[:tenth]),
        "front_summary_ms_last_tenth": 1e3 * statistics.median(fronts[-tenth:]),
        "finish_search_s (plots)": finish_s,
        "drain_after_last_candidate_s": drain_s,
        "unsynced_at_end": tracker.unsynced,
        "note": "measured on a shared machine unless rerun on a quiet one",
    }
    table = Table(title=f"Tracking overhead, {args.candidates} candidates")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in results.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    Console().print(table)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"tracking_overhead_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
