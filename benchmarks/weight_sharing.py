"""Weight-sharing benchmark: ranking fidelity, search scale, overhead, searcher cost.

1. Ranking fidelity: train the config's supernet into ``--checkpoint`` (or resume it,
   or find it finished), pick ``--fidelity-subnets`` subnets stratified from the
   smallest to the largest, score each with inherited weights (after batch-norm
   recalibration) and trained from scratch with one fixed budget (``--scratch-*``,
   AdamW with a cosine schedule) once per ``--scratch-seeds`` seed, both on the whole
   test split; Kendall's tau between the inherited ranking and that of the seeds' mean
   (target >= 0.7). The tau between two seeds of the same from-scratch training is
   the ceiling the references' own noise allows; the tau of the parameter count is the
   baseline a free predictor reaches. ``--skip inherited`` trains only the references;
   ``--scratch-from`` reuses them (per subnet and seed) across supernet attempts.
   With ``--set supernet.finetune_epochs=N`` each subnet is also fine-tuned from its
   inherited weights as a search's front is, and tau is reported after it.
2. Scale: one weight-sharing search of ``--search-subnets`` subnets timed on the
   config's targets, and a from-scratch search of ``--scratch-candidates`` candidates
   of the same space on the same machine; candidates per minute and their ratio.
3. Overhead: phase-2 wall time per subnet minus its work (extract, recalibrate,
   score, export; and the measurement, which overlaps the next subnet's work), as a
   share of that work (target <= 10%).
4. Searcher: ask + tell of the config's searcher at ``--searcher-told`` results (<= 5 ms).
5. ``--config-run``: the config as shipped, supernet training included: wall time and
   whether its subnets' latencies differ beyond their confidence intervals.

Sizes are flags so a smoke run fits a busy machine; rerun on a quiet one. Prints a
table and writes JSON (``--output``, default benchmarks/results/weight_sharing.json).

    .venv/bin/python benchmarks/weight_sharing.py --set dataset.name=fashion-mnist-full \
        --scratch-epochs 1 --skip train --skip inherited --skip scale --skip searcher \
        --output refs.json
    .venv/bin/python benchmarks/weight_sharing.py --set dataset.name=fashion-mnist-full \
        --set supernet.steps=1500 --set supernet.random_subnets=2 --set supernet.batch_size=64 \
        --scratch-epochs 1 --scratch-from refs.json --checkpoint supernet.pt \
        --skip scale --skip searcher
    .venv/bin/python benchmarks/weight_sharing.py --checkpoint supernet.pt --skip scale
    .venv/bin/python benchmarks/weight_sharing.py --checkpoint supernet.pt --skip fidelity
    .venv/bin/python benchmarks/weight_sharing.py --skip train --skip fidelity --skip scale \
        --skip searcher --config-run
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
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
from evaluators.training import SCHEDULES, TrainingSettings, train_and_evaluate
from orchestrator.config import SearchConfig, load_config, parse_override
from orchestrator.records import TrialRecord
from orchestrator.searchers import create_searcher
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
    parser.add_argument("--checkpoint", help="where the config's supernet is trained to (or resumed, "
                        "or found finished); default: a temporary file")
    parser.add_argument("--fidelity-subnets", type=int, default=16)
    parser.add_argument("--scratch-epochs", type=int, default=2,
                        help="from-scratch budget, the same for every fidelity subnet")
    parser.add_argument("--scratch-batch-size", type=int, default=64)
    parser.add_argument("--scratch-learning-rate", type=float, default=3e-3)
    parser.add_argument("--scratch-schedule", choices=SCHEDULES, default="cosine",
                        help="learning rate over the from-scratch budget")
    parser.add_argument("--scratch-seeds", type=int, nargs="+", default=[0, 1],
                        help="each fidelity subnet is trained from scratch once per seed; its "
                        "reference is the mean, and the seeds' rankings against each other "
                        "give the noise ceiling")
    parser.add_argument("--scratch-workers", type=int, default=2,
                        help="processes training fidelity subnets from scratch (one thread each)")
    parser.add_argument("--scratch-from", action="append", default=[],
                        help="reuse the from-scratch accuracies of an earlier JSON report (same "
                        "budget; repeatable), e.g. to try other supernet or recalibration settings")
    parser.add_argument("--fidelity-eval-samples", type=int, default=10_000,
                        help="held-out samples both accuracies are taken on (at most the test split)")
    parser.add_argument("--search-subnets", type=int, default=1000)
    parser.add_argument("--scratch-candidates", type=int, default=8)
    parser.add_argument("--config-run", action="store_true",
                        help="also run the config as shipped (supernet training included), timed")
    parser.add_argument("--searcher-told", type=int, default=10_000,
                        help="results told to the config's searcher before timing ask + tell")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["train", "fidelity", "inherited", "scale", "searcher"],
                        help="train: only train the supernet where fidelity or scale need it; "
                        "inherited: fidelity trains only the from-scratch references")
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
        needs_supernet = "scale" not in args.skip or not {"fidelity", "inherited"} & set(args.skip)
        if needs_supernet or "train" not in args.skip:
            report["supernet"] = _train(config, checkpoint)
        if "fidelity" not in args.skip:
            report["fidelity"] = _fidelity(config, checkpoint, args, overrides)
        if "scale" not in args.skip:
            report["scale"] = _scale(config, checkpoint, args, Path(tmp))
        if "searcher" not in args.skip:
            report["searcher"] = _searcher_cost(config, args.searcher_told)
        if args.config_run:
            report["config_run"] = _config_run(config, Path(tmp))
    report["machine"]["load_average_end"] = os.getloadavg()
    _print(report)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2, default=float))


def _train(config: SearchConfig, checkpoint: Path) -> dict[str, Any]:
    dataset = load_dataset(config.dataset.name, seed=config.seed)
    space = elastic_space(config, dataset.input_spec)
    result = train_supernet(space, dataset, config.supernet.settings(config.seed),
                            checkpoint=checkpoint, on_log=lambda entry: print(
                                f"supernet step {entry['step']:.0f}: loss {entry['loss_largest']:.3f}, "
                                f"distillation {entry['loss_distill']:.3f}", flush=True))
    return {"checkpoint": str(checkpoint), "steps": result.steps,
            "resumed_from": result.resumed_from, "seconds": result.seconds,
            "settings": {k: v for k, v in config.supernet.model_dump().items() if k != "checkpoint"},
            "final": result.history[-1] if result.history else {}}


def spanning_subnets(space: ElasticSpace, count: int, seed: int) -> list[Architecture]:
    """``count`` subnets stratified from the smallest to the largest (both included).

    Subnet ``i`` takes, in every dimension, the option at fraction ``i / (count - 1)``
    of its options sorted by size, moved by up to one option at random; so their sizes
    (and accuracies) spread evenly over the space rather than crowding its middle.
    """
    rng = np.random.default_rng(seed)
    picks = [space.smallest()]
    for level in np.linspace(0.0, 1.0, count)[1:-1]:
        values: dict[str, Any] = {}
        for choice in space.choices():
            options = sorted(choice.options())
            position = level * (len(options) - 1) + rng.uniform(-1.0, 1.0)
            values[choice.name] = options[int(np.clip(round(position), 0, len(options) - 1))]
        picks.append(space.architecture(values))
    return [*picks, space.largest()]


def _scratch_accuracy(config_path: str, overrides: dict[str, Any], values: dict[str, Any],
                      settings: TrainingSettings) -> tuple[float, float]:
    """(test accuracy, seconds) of one subnet trained from scratch (a worker process).

    ``settings.schedule="cosine"`` decays the learning rate to zero over the budget (as
    NAS benchmarks train their references), so the last iterate is not a noisy snapshot
    of a constant-rate run; ``"constant"`` is from-scratch mode's default training.
    """
    config = load_config(config_path, overrides=overrides)
    dataset = load_dataset(config.dataset.name, seed=config.seed)
    space = elastic_space(config, dataset.input_spec)
    torch.manual_seed(settings.seed)
    model = space.build(space.architecture(values))
    started = time.perf_counter()
    accuracy = train_and_evaluate(model, dataset, settings).accuracy
    return accuracy, time.perf_counter() - started


def _earlier_scratch(paths: list[str], budget: dict[str, Any]
                     ) -> dict[tuple[str, int], tuple[float, float]]:
    """From-scratch results of earlier reports with the same budget ((arch key, seed) -> them)."""
    earlier = {}
    for path in paths:
        fidelity = json.loads(Path(path).read_text())["fidelity"]
        if fidelity["scratch"] != budget:
            raise SystemExit(f"{path} trained from scratch with {fidelity['scratch']}, not {budget}")
        for row in fidelity["subnets"]:
            for seed, result in row["scratch"].items():
                earlier[row["arch"], int(seed)] = (result["accuracy"], result["seconds"])
    return earlier


def _tau(first: list[float], second: list[float]) -> float:
    return float(kendalltau(first, second).statistic)


def _fidelity(config: SearchConfig, checkpoint: Path, args: argparse.Namespace,
              overrides: dict[str, Any]) -> dict[str, Any]:
    dataset = load_dataset(config.dataset.name, seed=config.seed)
    space = elastic_space(config, dataset.input_spec)
    settings = replace(config.supernet.eval_settings(config.seed),
                       eval_samples=min(args.fidelity_eval_samples, len(dataset.test_x)))
    inherit = "inherited" not in args.skip
    finetune = config.supernet.finetune_settings(config.seed)
    evaluator = SubnetEvaluator(space=space, supernet=load_supernet(space, checkpoint),
                                dataset=dataset, settings=settings) if inherit else None
    archs = spanning_subnets(space, args.fidelity_subnets, config.seed)
    seeds = sorted(set(args.scratch_seeds))
    budget = {"dataset": config.dataset.name, "epochs": args.scratch_epochs,
              "batch_size": args.scratch_batch_size, "learning_rate": args.scratch_learning_rate,
              "schedule": args.scratch_schedule, "train_samples": len(dataset.train_x),
              "test_samples": len(dataset.test_x)}
    earlier = _earlier_scratch(args.scratch_from, budget)
    missing = [(arch, seed) for arch in reversed(archs) for seed in seeds  # largest first
               if (arch.key, seed) not in earlier]
    with ProcessPoolExecutor(max_workers=args.scratch_workers,
                             mp_context=multiprocessing.get_context("spawn")) as workers:
        pending = {(arch.key, seed): workers.submit(
            _scratch_accuracy, args.config, overrides, arch.as_dict(),
            TrainingSettings(epochs=args.scratch_epochs, batch_size=args.scratch_batch_size,
                             learning_rate=args.scratch_learning_rate,
                             schedule=args.scratch_schedule, seed=seed, threads=1))
            for arch, seed in missing}
        rows: list[dict[str, Any]] = []
        for arch in archs:
            row: dict[str, Any] = {"arch": arch.key, "choices": arch.as_dict(),
                                   "params": count_parameters(space.build(arch))}
            if evaluator is not None:
                inherited = evaluator.evaluate(arch)
                row.update(inherited_accuracy=inherited.accuracy,
                           inherited_seconds=sum(inherited.timings.values()))
                if finetune is not None:  # as the search fine-tunes its front
                    tuned = train_and_evaluate(inherited.model, dataset, finetune)
                    row.update(finetuned_accuracy=tuned.accuracy,
                               finetune_seconds=tuned.train_seconds)
            row["scratch"] = {}
            for seed in seeds:
                key = (arch.key, seed)
                accuracy, seconds = earlier[key] if key in earlier else pending[key].result()
                row["scratch"][str(seed)] = {"accuracy": accuracy, "seconds": seconds}
            row["scratch_accuracy"] = statistics.mean(
                r["accuracy"] for r in row["scratch"].values())
            rows.append(row)
            print(f"{arch.key} {row['params']:>7} params: inherited "
                  f"{row.get('inherited_accuracy', math.nan):.4f}, from scratch "
                  + " ".join(f"{r['accuracy']:.4f}" for r in row["scratch"].values()), flush=True)
    scratch = [r["scratch_accuracy"] for r in rows]
    per_seed = {seed: [r["scratch"][str(seed)]["accuracy"] for r in rows] for seed in seeds}
    pairs = [(a, b) for i, a in enumerate(seeds) for b in seeds[i + 1:]]
    report: dict[str, Any] = {
        "subnets": rows, "scratch": budget, "seeds": seeds, "scratch_from": args.scratch_from,
        "eval_samples": settings.eval_samples,
        "calibration": {"batches": settings.calibration_batches,
                        "batch_size": settings.calibration_batch_size},
        "scratch_range": [min(scratch), max(scratch)],
        # the noise ceiling: how well one from-scratch seed ranks the subnets like another
        "seed_to_seed_tau": {f"{a}-{b}": _tau(per_seed[a], per_seed[b]) for a, b in pairs},
        "params_tau": _tau([r["params"] for r in rows], scratch),
    }
    if evaluator is not None:
        inherited = [r["inherited_accuracy"] for r in rows]
        tau = kendalltau(inherited, scratch)
        report.update(
            kendall_tau=float(tau.statistic), p_value=float(tau.pvalue),
            tau_per_seed={str(seed): _tau(inherited, per_seed[seed]) for seed in seeds},
            inherited_range=[min(inherited), max(inherited)],
            median_inherited_seconds=statistics.median(r["inherited_seconds"] for r in rows))
    if evaluator is not None and finetune is not None:
        tuned = [r["finetuned_accuracy"] for r in rows]
        report["finetuned"] = {
            "epochs": finetune.epochs, "learning_rate": finetune.learning_rate,
            "kendall_tau": _tau(tuned, scratch),
            "tau_per_seed": {str(seed): _tau(tuned, per_seed[seed]) for seed in seeds},
            "range": [min(tuned), max(tuned)],
            "median_gain": statistics.median(
                r["finetuned_accuracy"] - r["inherited_accuracy"] for r in rows),
            "median_seconds": statistics.median(r["finetune_seconds"] for r in rows)}
    return report


def _search(config: SearchConfig, name: str, tmp: Path, **changes: Any) -> tuple[list[TrialRecord], float]:
    data = config.model_dump(mode="json")
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    data["name"] = name
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


def _config_run(config: SearchConfig, tmp: Path) -> dict[str, Any]:
    """The config as shipped, end to end (supernet training included): wall time, and
    whether its subnets' latencies differ beyond their measurement noise (confidence
    intervals of the median that do not overlap)."""
    records, total = _search(config, "config-run", tmp, **{"supernet.checkpoint": None})
    done = [r for r in records if r.ok]
    latency: dict[str, Any] = {}
    for target in (t.name for t in config.targets):
        medians = np.array([r.metrics[f"latency_ms@{target}"] for r in done])
        low = np.array([r.metrics[f"latency_ci_low_ms@{target}"] for r in done])
        high = np.array([r.metrics[f"latency_ci_high_ms@{target}"] for r in done])
        apart = (high[:, None] < low[None, :]) | (high[None, :] < low[:, None])
        latency[target] = {
            "min_ms": float(medians.min()), "max_ms": float(medians.max()),
            "median_ci_width_ms": float(np.median(high - low)),
            "pairs_apart_share": float(apart[np.triu_indices(len(done), 1)].mean()),
        }
    return {"subnets": len(records), "failed": len(records) - len(done),
            "wall_seconds": total, "latency": latency}


def _searcher_cost(config: SearchConfig, told: int, repeats: int = 500) -> dict[str, Any]:
    """Milliseconds per ask + tell of the config's searcher once ``told`` results are known
    (random objective vectors; the space's own architectures)."""
    space = elastic_space(config, load_dataset(config.dataset.name, seed=config.seed).input_spec)
    searcher = create_searcher(config.searcher.name, space=space, seed=config.seed,
                               options=config.searcher.options,
                               num_objectives=len(config.objectives))
    rng = np.random.default_rng(config.seed)
    size = len(config.objectives)
    costs, count = {}, 0
    for target in sorted({min(1000, told), told}):
        for _ in range(target - count):
            searcher.tell(searcher.ask(), objectives=rng.random(size).tolist())
        started = time.perf_counter()
        for _ in range(repeats):
            searcher.tell(searcher.ask(), objectives=rng.random(size).tolist())
        costs[str(target)] = 1e3 * (time.perf_counter() - started) / repeats
        count = target + repeats
    return {"searcher": config.searcher.name, "options": dict(config.searcher.options),
            "objectives": size, "ask_tell_ms": costs}


def _print(report: dict[str, Any]) -> None:
    table = Table(title="weight-sharing benchmark")
    table.add_column("measure")
    table.add_column("value", justify="right")
    if "supernet" in report:
        table.add_row("supernet training (s)", f"{report['supernet']['seconds']:.1f}")
    if "fidelity" in report:
        fidelity = report["fidelity"]
        seeds = ", ".join(map(str, fidelity["seeds"]))
        if "kendall_tau" in fidelity:
            table.add_row(f"Kendall tau, {len(fidelity['subnets'])} subnets, inherited vs mean of "
                          f"seeds {seeds} from scratch (target >= 0.7)", f"{fidelity['kendall_tau']:.3f}")
            table.add_row("Kendall tau, inherited vs each seed", " / ".join(
                f"{tau:.3f}" for tau in fidelity["tau_per_seed"].values()))
            low, high = fidelity["inherited_range"]
            table.add_row("inherited accuracy range", f"{low:.4f}-{high:.4f}")
            table.add_row("median inherited evaluation (s)",
                          f"{fidelity['median_inherited_seconds']:.3f}")
        if "finetuned" in fidelity:
            tuned = fidelity["finetuned"]
            table.add_row(f"Kendall tau after fine-tuning {tuned['epochs']} epoch(s), vs mean / "
                          f"each seed", f"{tuned['kendall_tau']:.3f} / " + " / ".join(
                              f"{tau:.3f}" for tau in tuned["tau_per_seed"].values()))
            table.add_row("fine-tuned accuracy range; median gain; median seconds",
                          f"{tuned['range'][0]:.4f}-{tuned['range'][1]:.4f}; "
                          f"{tuned['median_gain']:+.4f}; {tuned['median_seconds']:.1f}")
        table.add_row("Kendall tau, seed vs seed from scratch (noise ceiling)", " / ".join(
            f"{tau:.3f}" for tau in fidelity["seed_to_seed_tau"].values()))
        table.add_row("Kendall tau, parameter count vs from scratch", f"{fidelity['params_tau']:.3f}")
        low, high = fidelity["scratch_range"]
        table.add_row("from-scratch accuracy range (mean of seeds)", f"{low:.4f}-{high:.4f}")
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
    if "config_run" in report:
        run = report["config_run"]
        table.add_row(f"config end to end: {run['subnets']} subnets ({run['failed']} failed), s",
                      f"{run['wall_seconds']:.1f}")
        for target, spread in run["latency"].items():
            table.add_row(f"{target}: latency range (ms) / median CI width / pairs apart",
                          f"{spread['min_ms']:.3f}-{spread['max_ms']:.3f} / "
                          f"{spread['median_ci_width_ms']:.3f} / {100 * spread['pairs_apart_share']:.0f}%")
    if "searcher" in report:
        for told, ms in report["searcher"]["ask_tell_ms"].items():
            table.add_row(f"{report['searcher']['searcher']} ask + tell at {told} results (ms)",
                          f"{ms:.2f}")
    table.add_row("load average start / end",
                  f"{report['machine']['load_average_start'][0]:.1f} / "
                  f"{report['machine']['load_average_end'][0]:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
