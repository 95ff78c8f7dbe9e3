"""Weight-sharing benchmark: ranking fidelity, search scale and per-candidate overhead.

1. Ranking fidelity: train the config's supernet (or reuse ``--checkpoint``), pick
   ``--fidelity-subnets`` subnets spanning the space (evenly spaced by parameter count
   among random samples, both ends included), score each with inherited weights (after
   batch-norm recalibration) and trained from scratch for ``--scratch-epochs``; report
   Kendall's tau between the two rankings (target >= 0.7).
2. Scale: one weight-sharing search of ``--search-subnets`` subnets timed on the
   config's targets, and a from-scratch search of ``--scratch-candidates`` candidates
   of the same space on the same machine; candidates per minute and their ratio.
3. Overhead: phase-2 wall time per subnet minus its work (extract, recalibrate,
   score, export; and the measurement, which overlaps the next subnet's work), as a
   share of that work (target <= 10%).

Sizes are flags so a smoke run fits a busy machine; rerun it with the defaults on a
quiet one. Prints a table and writes JSON to benchmarks/results/weight_sharing.json.

    .venv/bin/python benchmarks/weight_sharing.py [--search-subnets 1000] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from scipy.stats import kendalltau

from evaluators.data import load_dataset
from evaluators.export import count_parameters
from evaluators.supernet import SubnetEvaluator, load_supernet, train_supernet
from evaluators.training import TrainingSettings, train_and_evaluate
from orchestrator.config import SearchConfig, load_config, parse_override
from orchestrator.records import TrialRecord
from orchestrator.tracking import MlflowTracker
from orchestrator.tune_driver import run_search
from orchestrator.weight_sharing import elastic_space
from search_spaces import Architecture
from search_spaces.elastic import ElasticSpace

ROOT = Path(__file__).resolve().parents[1]
TRIAL_STAGES = ("extract", "calibrate", "evaluate", "export")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "configs" / "weight_sharing.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--checkpoint", help="a trained supernet for the config (skips training)")
    parser.add_argument("--fidelity-subnets", type=int, default=16)
    parser.add_argument("--scratch-epochs", type=int, default=3)
    parser.add_argument("--fidelity-eval-samples", type=int, default=3000)
    parser.add_argument("--search-subnets", type=int, default=1000)
    parser.add_argument("--scratch-candidates", type=int, default=8)
    parser.add_argument("--skip", action="append", default=[], choices=["fidelity", "scale"])
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "weight_sharing.json"))
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                          "load_average_start": os.getloadavg()}}
    with tempfile.TemporaryDirectory(prefix="paretonas-ws-bench-") as tmp:
        overrides = dict(map(parse_override, args.overrides))
        overrides.setdefault("tracking.uri", f"sqlite:///{tmp}/mlflow.db")
        overrides.setdefault("output_dir", f"{tmp}/results")
        config = load_config(args.config, overrides=overrides)
        checkpoint = Path(args.checkpoint or Path(tmp, "supernet.pt"))
        if not args.checkpoint:
            report["supernet"] = _train(config, checkpoint)
        if "fidelity" not in args.skip:
            report["fidelity"] = _fidelity(config, checkpoint, args)
        if "scale" not in args.skip:
            report["scale"] = _scale(config, checkpoint, args, Path(tmp))
    report["machine"]["load_average_end"] = os.getloadavg()
    _print(report)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2, default=float))


def _train(config: SearchConfig, checkpoint: Path) -> dict[str, Any]:
    dataset = load_dataset(config.dataset.name, seed=config.seed)
    space = elastic_space(config, dataset.input_spec)
    result = train_supernet(space, dataset, config.supernet.settings(config.seed),
                            checkpoint=checkpoint)
    return {"steps": result.steps, "seconds": result.seconds,
            "final": result.history[-1] if result.history else {}}


def spanning_subnets(space: ElasticSpace, count: int, seed: int) -> list[Architecture]:
    """``count`` subnets evenly spaced by parameter count (smallest and largest included)."""
    rng = np.random.default_rng(seed)
    supernet = space.supernet()
    pool = {a.key: a for a in [space.smallest(), space.largest(),
                               *(space.sample(rng) for _ in range(20 * count))]}
    ranked = sorted(pool.values(), key=lambda a: count_parameters(supernet.extract(a)))
    picks = np.unique(np.linspace(0, len(ranked) - 1, count).round().astype(int))
    return [ranked[i] for i in picks]


def _fidelity(config: SearchConfig, checkpoint: Path, args: argparse.Namespace) -> dict[str, Any]:
    dataset = load_dataset(config.dataset.name, seed=config.seed)
    space = elastic_space(config, dataset.input_spec)
    settings = config.supernet.eval_settings(config.seed)
    evaluator = SubnetEvaluator(
        space=space, supernet=load_supernet(space, checkpoint), dataset=dataset,
        settings=type(settings)(**{**settings.__dict__, "eval_samples": args.fidelity_eval_samples}))
    training = TrainingSettings(epochs=args.scratch_epochs, batch_size=64, learning_rate=4e-3,
                                seed=config.seed, threads=1)
    rows = []
    for arch in spanning_subnets(space, args.fidelity_subnets, config.seed):
        inherited = evaluator.evaluate(arch)
        torch.manual_seed(config.seed)
        started = time.perf_counter()
        scratch = train_and_evaluate(space.build(arch), dataset, training)
        rows.append({"arch": arch.key, "params": inherited.params,
                     "inherited_accuracy": inherited.accuracy,
                     "inherited_seconds": sum(inherited.timings.values()),
                     "scratch_accuracy": scratch.accuracy,
                     "scratch_seconds": time.perf_counter() - started})
    tau = kendalltau([r["inherited_accuracy"] for r in rows], [r["scratch_accuracy"] for r in rows])
    return {"subnets": rows, "kendall_tau": float(tau.statistic), "p_value": float(tau.pvalue),
            "scratch_epochs": args.scratch_epochs, "eval_samples": args.fidelity_eval_samples,
            "median_inherited_seconds": statistics.median(r["inherited_seconds"] for r in rows)}


def _search(config: SearchConfig, name: str, tmp: Path, **changes: Any) -> tuple[list[TrialRecord], float]:
    data = config.model_dump(mode="json")
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    data["tracking"] = {"uri": f"sqlite:///{tmp}/{name}.db", "experiment": name, "log_models": False}
    run_config = SearchConfig.model_validate(data)
    started = time.perf_counter()
    result = run_search(run_config, tracker=MlflowTracker(uri=run_config.tracking.uri,
                                                          experiment=name, log_models=False))
    return list(result.records), time.perf_counter() - started


def _rate(records: list[TrialRecord]) -> tuple[float, float]:
    """(candidates per minute, seconds) from the first trial's start to the last record."""
    first = min(r.started_at for r in records)
    last = max(r.started_at + r.wall_seconds for r in records)
    return 60.0 * len(records) / (last - first), last - first


def _scale(config: SearchConfig, checkpoint: Path, args: argparse.Namespace, tmp: Path
           ) -> dict[str, Any]:
    records, total = _search(config, "weight-sharing", tmp, **{
        "supernet.checkpoint": str(checkpoint), "budget.candidates": args.search_subnets})
    done = [r for r in records if r.ok]
    per_minute, phase_seconds = _rate(records)
    trial_work = [sum(r.metrics[f"time_{s}_s"] for s in TRIAL_STAGES) for r in done]
    measure = [r.metrics["time_measure_s"] for r in done]
    serial_work = sum(trial_work) + sum(measure)
    critical_work = sum(max(t, m) for t, m in zip(trial_work, measure, strict=True))
    scratch, scratch_total = _search(config, "from-scratch", tmp, **{
        "mode": "from_scratch", "budget.candidates": args.scratch_candidates,
        "training.epochs": 1, "training.batch_size": 128})
    scratch_per_minute, _ = _rate(scratch)
    return {
        "subnets": len(records), "failed": len(records) - len(done),
        "targets": [t.name for t in config.targets],
        "search_seconds": total, "phase2_seconds": phase_seconds,
        "candidates_per_minute": per_minute,
        "from_scratch": {"candidates": len(scratch), "search_seconds": scratch_total,
                         "candidates_per_minute": scratch_per_minute, "epochs": 1},
        "ratio_to_from_scratch": per_minute / scratch_per_minute,
        "median_seconds": {**{s: statistics.median(r.metrics[f"time_{s}_s"] for r in done)
                              for s in (*TRIAL_STAGES, "measure")},
                           "wall": statistics.median(r.wall_seconds for r in done)},
        "overhead_share_vs_critical_path": (phase_seconds - critical_work) / critical_work,
        "overhead_share_vs_serial_work": (phase_seconds - serial_work) / serial_work,
    }


def _print(report: dict[str, Any]) -> None:
    table = Table(title="weight-sharing benchmark")
    table.add_column("measure")
    table.add_column("value", justify="right")
    if "supernet" in report:
        table.add_row("supernet training (s)", f"{report['supernet']['seconds']:.1f}")
    if "fidelity" in report:
        fidelity = report["fidelity"]
        table.add_row(f"Kendall tau, {len(fidelity['subnets'])} subnets (target >= 0.7)",
                      f"{fidelity['kendall_tau']:.3f}")
        table.add_row("median inherited evaluation (s)", f"{fidelity['median_inherited_seconds']:.3f}")
    if "scale" in report:
        scale = report["scale"]
        table.add_row(f"subnets searched ({scale['failed']} failed)", str(scale["subnets"]))
        table.add_row("weight-sharing candidates / min", f"{scale['candidates_per_minute']:.1f}")
        table.add_row("from-scratch candidates / min",
                      f"{scale['from_scratch']['candidates_per_minute']:.2f}")
        table.add_row("ratio", f"{scale['ratio_to_from_scratch']:.1f}x")
        table.add_row("overhead vs critical-path work (target <= 10%)",
                      f"{100 * scale['overhead_share_vs_critical_path']:.1f}%")
        table.add_row("overhead vs serial work", f"{100 * scale['overhead_share_vs_serial_work']:.1f}%")
    table.add_row("load average start / end",
                  f"{report['machine']['load_average_start'][0]:.1f} / "
                  f"{report['machine']['load_average_end'][0]:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
