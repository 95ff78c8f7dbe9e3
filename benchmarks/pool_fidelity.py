"""Fidelity of paretonas's latencies against the vendors' tools, repeatability, and the
compiler-awareness report, on one pinned CPU core.

For 28 models built with the SDK (MLPs and conv classifiers at 1×28×28, wider conv
classifiers at 3×40×40, 3×64×64 and 3×96×96; random weights; about 0.01-5 ms on one core
of a recent Xeon, about half of them under 0.2 ms), each exported once to ONNX and ``.pt2``,
five steps in turn, so that paretonas and the vendor tool both see the machine over the
same stretch of time:

1. pass A: paretonas on OpenVINO CPU, ONNX Runtime CPU and torch eager (1 thread), every
   model and target compiled at once and timed round-robin in short rounds
   (``evaluators.measure_many``, the protocol of the pool's confirmation pass and of
   ``paretonas measure``), with the default ``TimingSettings`` times ``--rounds``: each
   latency is the median of its rounds' medians, its interval over those rounds;
2. vendor 1: OpenVINO's ``benchmark_app`` on every model, same file and core
   (``taskset -c N``, ``-d CPU -hint none -nstreams 1 -nthreads 1 -api sync -shape
   input[1,...] -infer_precision f32``: without the last flag it runs bf16 on CPUs with
   AMX/AVX512-BF16, while paretonas's fp32 target asks for f32), its median;
   ``onnxruntime_perf_test`` likewise if it is on PATH (it is not in the pip wheel);
3. OpenVINO again on the sub-0.2 ms models with ``calls_per_sample=8`` (K calls per
   sample), round-robin too, to see whether K > 1 brings paretonas closer to ``benchmark_app``;
4. pass B: as pass A, independent of it (fresh compiles, later);
5. vendor 2: as vendor 1.

Every step holds the core's node-wide lock, as the pool's actors do, so no paretonas
search elsewhere on the machine times on that core meanwhile.

Reports Kendall τ and the median ratio paretonas/benchmark_app (all models and the
sub-0.2 ms subset) between the mean of passes A and B and the mean of the two vendor
runs (and pass A against vendor 1 alone); τ and median |Δ| between passes A and B per
target, and between the two ``benchmark_app`` runs (the vendor tool's own repeatability
on the same machine); how often pass B's median falls inside pass A's 95% interval; the
pairwise τ between runtimes (which ranking the compiler changes); and, for comparison
only, the same figures for other statistics of the round medians (lower quantiles).
Targets: τ >= 0.9, median ratio within 1 ± 0.10, repeatability τ >= 0.9 and median
|Δ| <= 5%. Prints tables, writes ``benchmarks/results/pool_fidelity[_quick].json`` (with
the load average before and after) and ``.png``.

Last runs on the 2-core VM. Quiet (load average 1.25 -> 1.00, 421 s): OpenVINO vs
benchmark_app τ 0.952 / ratio 0.977 (all 28), 0.889 / 1.031 (sub-0.2 ms); repeatability
τ / median |Δ| OpenVINO 0.952 / 15.6%, ONNX Runtime 0.952 / 16.7%, torch eager 0.889 /
13.9%, benchmark_app itself 0.910 / 20.3%. Loaded (2.9 -> 2.0, 434 s): 0.942 / 0.894,
0.778 / 1.117; repeatability 0.937 / 18.0%, 0.921 / 13.8%, 0.921 / 11.7%, benchmark_app
0.942 / 23.1%.

Run on a quiet machine (other load inflates and scrambles the numbers):

    PYTHONPATH=$PWD .venv/bin/python benchmarks/pool_fidelity.py [--quick] [--core N]
        [--rounds 1] [--rel-ci 0.02] [--max-seconds 1] [--bench-seconds 2] [--torch-compile]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from rich.console import Console
from rich.table import Table
from scipy.stats import kendalltau

from evaluators import (
    BackendOptions,
    MeasureJob,
    Measurement,
    TimingSettings,
    export_onnx,
    measure_many,
)
from evaluators.backends.torch_backend import save_torch_program
from hardware_pool.core_lock import hold_cores
from search_spaces import InputSpec, create_space

ROOT = Path(__file__).resolve().parents[1]
SMALL_MS = 0.2
K_CALLS = 8
BENCHMARK_APP = Path(sys.executable).with_name("benchmark_app")
ORT_TOOL_ABSENT = ("onnxruntime_perf_test is absent: not on PATH, and the onnxruntime pip "
                   "wheel does not ship it (it comes with a source build of ONNX Runtime)")


@dataclass(frozen=True)
class Family:
    """Models sampled (seeded) from one search space at one input shape."""

    name: str
    space: str
    shape: tuple[int, ...]
    options: dict[str, Any]
    count: int
    quick_count: int


_WIDE = {"widths": (16, 24, 32), "stem_channels": 16, "expansions": (2, 4)}
FAMILIES = (  # OpenVINO, one core of a recent Xeon: mlp28 0.01-0.2 ms, conv28 0.07-0.3,
    # conv40 0.3-0.8, conv64 0.4-2.4, conv96 0.8-5
    Family("mlp28", "mlp", (1, 28, 28),
           {"max_layers": 3, "hidden_units": (128, 256, 512, 1024)}, 6, 2),
    Family("conv28", "conv-classifier", (1, 28, 28), {}, 8, 3),
    Family("conv40", "conv-classifier", (3, 40, 40), _WIDE, 5, 2),
    Family("conv64", "conv-classifier", (3, 64, 64), _WIDE, 5, 1),
    Family("conv96", "conv-classifier", (3, 96, 96), _WIDE, 4, 0),
)


@dataclass(frozen=True)
class BenchModel:
    name: str
    onnx_path: Path
    input_name: str
    input_shape: tuple[int, ...]  # batch first


def build_models(out_dir: Path, *, quick: bool, seed: int) -> list[BenchModel]:
    """Sample distinct architectures per family, export each to ONNX and ``.pt2``."""
    models = []
    for family in FAMILIES:
        space = create_space(family.space, input_spec=InputSpec(family.shape, 10),
                             options=family.options)
        rng = np.random.default_rng(seed)
        wanted = family.quick_count if quick else family.count
        seen: set[str] = set()
        while len(seen) < wanted:
            arch = space.sample(rng)
            if arch.key in seen:
                continue
            seen.add(arch.key)
            torch.manual_seed(seed + len(seen))
            module = space.build(arch).eval()
            example = space.example_input(1)
            path = out_dir / f"{family.name}-{len(seen):02d}.onnx"
            export_onnx(module, example_input=example, path=path, candidate=path.stem)
            save_torch_program(module, example_input=example, onnx_path=path)
            input_name = onnx.load(path, load_external_data=False).graph.input[0].name
            models.append(BenchModel(path.stem, path, input_name, (1, *family.shape)))
    return models


def pin_process(core: int) -> None:
    """Pin every thread of this process (and the threads it starts later) to ``core``."""
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), {core})
        except ProcessLookupError:
            continue  # the thread ended between listing and pinning


def holding(core: int) -> AbstractContextManager[None]:
    """The core's node-wide lock, which the pool's actors take too: no paretonas search on
    this machine times on the core meanwhile (it waits, as two searches do)."""
    return hold_cores([core], timeout_s=900, holder="benchmarks/pool_fidelity.py")


def paretonas_pass(models: list[BenchModel], targets: dict[str, MeasureJob],
                   timing: TimingSettings, console: Console, label: str, *, core: int
                   ) -> dict[str, dict[str, dict[str, Any]]]:
    """{target: {model: measurement as a dict, or {"error": ...}}}: one ``measure_many``
    over every model and target, round-robin (the pool's confirmation protocol)."""
    started, sweeps = time.perf_counter(), [0]

    def progress() -> None:
        sweeps[0] += 1
        if sweeps[0] % 50 == 0:
            console.print(f"  [{label}] {sweeps[0]} steps, {time.perf_counter() - started:.0f} s")

    with holding(core):
        measured = measure_many(
            [(model.onnx_path, [replace(job, input_shape=model.input_shape)
                                for job in targets.values()]) for model in models],
            timing=timing, on_progress=progress)
    results: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in targets}
    for model, per_target in zip(models, measured, strict=True):
        for name, result in zip(targets, per_target, strict=True):
            results[name][model.name] = (asdict(result) if isinstance(result, Measurement)
                                         else {"error": str(result)})
    console.print(f"  [{label}] {len(models)} models x {len(targets)} targets in "
                  f"{time.perf_counter() - started:.0f} s")
    return results


def vendor_pass(models: list[BenchModel], *, core: int, seconds: float, console: Console,
                label: str, ort_tool: str | None) -> tuple[dict[str, float], dict[str, float]]:
    """benchmark_app (and onnxruntime_perf_test if present) on every model, one after
    another: {model: median ms} for each tool."""
    started = time.perf_counter()
    bench: dict[str, float] = {}
    ort: dict[str, float] = {}
    with holding(core):
        for model in models:
            bench[model.name] = benchmark_app_median(model, core=core, seconds=seconds)
            if ort_tool:
                ort[model.name] = ort_perf_test_median(ort_tool, model, core=core,
                                                       seconds=seconds)
    console.print(f"  [{label}] benchmark_app on {len(models)} models in "
                  f"{time.perf_counter() - started:.0f} s")
    return bench, ort


def _fmt(entry: dict[str, Any]) -> str:
    return f"{entry['median_ms']:.4f} ms" if "median_ms" in entry else "error"


def benchmark_app_median(model: BenchModel, *, core: int, seconds: float) -> float:
    """``benchmark_app``'s median latency (ms) for ``model`` on ``core``, sync, 1 thread."""
    shape = ",".join(map(str, model.input_shape))
    command = ["taskset", "-c", str(core), str(BENCHMARK_APP), "-m", str(model.onnx_path),
               "-d", "CPU", "-hint", "none", "-nstreams", "1", "-nthreads", "1", "-api", "sync",
               "-shape", f"{model.input_name}[{shape}]", "-infer_precision", "f32",
               "-t", str(max(1, round(seconds)))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120 + seconds)
    found = re.search(r"Median:\s+([\d.]+)\s*(ms|us)", done.stdout)
    if done.returncode or not found:
        raise RuntimeError(f"benchmark_app failed on {model.name} (exit {done.returncode}): "
                           f"{(done.stdout + done.stderr)[-500:]}")
    value = float(found.group(1))
    return value / 1000 if found.group(2) == "us" else value


def ort_perf_test_median(tool: str, model: BenchModel, *, core: int, seconds: float) -> float:
    """``onnxruntime_perf_test``'s P50 latency (ms): CPU EP, 1 intra/inter-op thread."""
    command = ["taskset", "-c", str(core), tool, "-e", "cpu", "-x", "1", "-y", "1",
               "-t", str(int(max(1, seconds))), "-I", str(model.onnx_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120 + seconds)
    found = re.search(r"P50 Latency:\s*([\d.eE+-]+)\s*s", done.stdout)
    if done.returncode or not found:
        raise RuntimeError(f"onnxruntime_perf_test failed on {model.name}: "
                           f"{(done.stdout + done.stderr)[-500:]}")
    return float(found.group(1)) * 1000


def tau(a: list[float], b: list[float]) -> float | None:
    if len(a) < 3:
        return None
    value = float(kendalltau(a, b).statistic)
    return None if np.isnan(value) else value


def compare(ours: dict[str, float], reference: dict[str, float]) -> dict[str, Any]:
    """τ and median ratio ours/reference over the common models (all, and sub-0.2 ms)."""
    report: dict[str, Any] = {}
    for subset, limit in (("all", np.inf), ("sub_0.2ms", SMALL_MS)):
        names = [n for n in ours if n in reference and reference[n] < limit]
        a, b = [ours[n] for n in names], [reference[n] for n in names]
        report[subset] = {
            "models": len(names), "kendall_tau": tau(a, b),
            "median_ratio": statistics.median(x / y for x, y in zip(a, b, strict=True))
            if names else None,
        }
    return report


def repeatability(first: dict[str, float], second: dict[str, float]) -> dict[str, Any]:
    names = [n for n in first if n in second]
    a, b = [first[n] for n in names], [second[n] for n in names]
    deltas = [abs(x - y) / ((x + y) / 2) for x, y in zip(a, b, strict=True)]
    return {"models": len(names), "kendall_tau": tau(a, b),
            "median_abs_delta": statistics.median(deltas) if deltas else None}


def coverage(first: dict[str, dict[str, Any]], second: dict[str, dict[str, Any]]
             ) -> dict[str, Any]:
    """How honest the intervals are: the share of models whose pass-B median lies inside
    pass A's interval, and the median half-width of those intervals (relative)."""
    names = [n for n in first if "ci_low_ms" in first[n] and "median_ms" in second.get(n, {})]
    inside = [first[n]["ci_low_ms"] <= second[n]["median_ms"] <= first[n]["ci_high_ms"]
              for n in names]
    widths = [(first[n]["ci_high_ms"] - first[n]["ci_low_ms"]) / 2 / first[n]["median_ms"]
              for n in names]
    return {"models": len(names),
            "b_inside_a_interval": sum(inside) / len(names) if names else None,
            "median_rel_half_width": statistics.median(widths) if widths else None}


#: other statistics of a measurement's round medians, reported beside the protocol's
#: (their median) to show how the choice of statistic bears on repeatability
ALTERNATIVES = {"p25_of_rounds": 25.0, "p10_of_rounds": 10.0, "min_of_rounds": 0.0}


def round_statistic(results: dict[str, dict[str, Any]], percentile: float) -> dict[str, float]:
    return {name: float(np.percentile(entry["round_medians_ms"], percentile))
            for name, entry in results.items() if entry.get("round_medians_ms")}


def mean_of(*runs: dict[str, float]) -> dict[str, float]:
    """Per model, the mean over the runs that have it."""
    names = {n for run in runs for n in run}
    return {n: statistics.fmean(run[n] for run in runs if n in run) for n in sorted(names)}


def medians(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {name: entry["median_ms"] for name, entry in results.items() if "median_ms" in entry}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 models, short runs (smoke test)")
    parser.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rel-ci", type=float, default=TimingSettings.rel_ci)
    parser.add_argument("--max-seconds", type=float, default=TimingSettings.max_seconds)
    parser.add_argument("--warmup-runs", type=int, default=TimingSettings.warmup_runs)
    parser.add_argument("--rounds", type=int, default=1,
                        help="timing budget per model in multiples of the settings' (as the "
                             "confirmation pass's pool.confirm.rounds)")
    parser.add_argument("--bench-seconds", type=float, default=2.0,
                        help="duration of each benchmark_app / onnxruntime_perf_test run")
    parser.add_argument("--torch-compile", action="store_true",
                        help="add torch.compile as a target (Inductor: minutes per model)")
    args = parser.parse_args()
    console = Console(width=200)
    pin_process(args.core)
    timing = TimingSettings(rel_ci=args.rel_ci, max_seconds=args.max_seconds,
                            warmup_runs=args.warmup_runs).scaled(args.rounds)
    if args.quick:
        args.bench_seconds = min(args.bench_seconds, 1.0)
    one = BackendOptions(threads=1)
    targets = {name: MeasureJob(backend=name, options=one, input_shape=(1, 1))
               for name in ("openvino", "onnxruntime", "torch-eager")}
    if args.torch_compile:
        targets["torch-compile"] = MeasureJob(backend="torch-compile", options=one,
                                              input_shape=(1, 1))
    ort_tool = shutil.which("onnxruntime_perf_test")
    if ort_tool is None:
        console.print(f"[yellow]{ORT_TOOL_ABSENT}[/]; ONNX Runtime is compared with the "
                      f"other runtimes only", soft_wrap=True)
    started = time.perf_counter()
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="paretonas-fidelity-") as tmp:
        console.print(f"building models (pinned to core {args.core}) ...")
        models = build_models(Path(tmp), quick=args.quick, seed=args.seed)
        vendor_args = {"core": args.core, "seconds": args.bench_seconds, "console": console,
                       "ort_tool": ort_tool}
        console.print(f"pass A: paretonas round-robin over {len(models)} models x "
                      f"{', '.join(targets)} ...")
        pass_a = paretonas_pass(models, targets, timing, console, "A", core=args.core)
        vendor_1, ort_vendor_1 = vendor_pass(models, label="vendor 1", **vendor_args)
        small = [m for m in models if vendor_1[m.name] < SMALL_MS]
        console.print(f"OpenVINO with K={K_CALLS} calls per sample on the {len(small)} "
                      f"sub-{SMALL_MS} ms models ...")
        k_results = paretonas_pass(small, {"openvino": targets["openvino"]},
                                   replace(timing, calls_per_sample=K_CALLS), console,
                                   f"K={K_CALLS}", core=args.core)["openvino"]
        console.print("pass B: paretonas again (fresh compiles) ...")
        pass_b = paretonas_pass(models, targets, timing, console, "B", core=args.core)
        vendor_2, ort_vendor_2 = vendor_pass(models, label="vendor 2", **vendor_args)

    vendor = mean_of(vendor_1, vendor_2)
    ours = {name: mean_of(medians(pass_a[name]), medians(pass_b[name])) for name in targets}
    ort_vendor = mean_of(ort_vendor_1, ort_vendor_2)
    report: dict[str, Any] = {
        "machine": {"cpu": next(iter(pass_a["openvino"].values())).get("device_name"),
                    "core": args.core, "load_average_before": load_before,
                    "load_average": os.getloadavg(),
                    "note": "shared, contended machine unless stated otherwise"},
        "protocol": "passes A, vendor 1, K, B, vendor 2 in turn; each paretonas pass times "
                    "every model and target round-robin (measure_many); fidelity compares "
                    "the mean of passes A and B with the mean of the two vendor passes",
        "timing": asdict(timing),
        "bench_seconds": args.bench_seconds,
        "onnxruntime_perf_test": ort_tool or ORT_TOOL_ABSENT,
        "models": {m.name: {"input_shape": m.input_shape, "benchmark_app_ms": vendor[m.name],
                            "benchmark_app_runs_ms": [vendor_1[m.name], vendor_2[m.name]],
                            "onnxruntime_perf_test_ms": ort_vendor.get(m.name)}
                   for m in models},
        "fidelity": {
            "openvino_vs_benchmark_app": compare(ours["openvino"], vendor),
            "openvino_pass_a_vs_benchmark_app_1": compare(medians(pass_a["openvino"]),
                                                          vendor_1),
            f"openvino_k{K_CALLS}_vs_benchmark_app": compare(medians(k_results), vendor),
            "onnxruntime_vs_perf_test": compare(ours["onnxruntime"], ort_vendor)
            if ort_vendor else None,
        },
        "repeatability": {name: repeatability(medians(pass_a[name]), medians(pass_b[name]))
                          for name in targets}
        | {"benchmark_app": repeatability(vendor_1, vendor_2)},
        "interval_coverage": {name: coverage(pass_a[name], pass_b[name]) for name in targets},
        "alternative_statistics": {
            statistic: {
                "openvino_vs_benchmark_app": compare(mean_of(
                    round_statistic(pass_a["openvino"], q),
                    round_statistic(pass_b["openvino"], q)), vendor),
                "repeatability": {name: repeatability(round_statistic(pass_a[name], q),
                                                      round_statistic(pass_b[name], q))
                                  for name in targets},
            } for statistic, q in ALTERNATIVES.items()
        },
        "compiler_awareness": {
            f"{x} vs {y}": tau(*_paired(ours[x], ours[y]))
            for i, x in enumerate(targets) for y in list(targets)[i + 1:]
        },
        "pass_a": pass_a, "pass_b": pass_b, f"openvino_k{K_CALLS}": k_results,
        "seconds": time.perf_counter() - started,
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = "pool_fidelity_quick" if args.quick else "pool_fidelity"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str))
    _plot(models, targets, ours, vendor, out / f"{stem}.png")
    _print(console, report, models, pass_a, pass_b, vendor, k_results)
    console.print(f"wrote {out / stem}.json and .png in {report['seconds']:.0f} s "
                  f"(load average {load_before[0]:.2f} before, "
                  f"{report['machine']['load_average'][0]:.2f} after)")


def _paired(a: dict[str, float], b: dict[str, float]) -> tuple[list[float], list[float]]:
    names = [n for n in a if n in b]
    return [a[n] for n in names], [b[n] for n in names]


def _print(console: Console, report: dict[str, Any], models: list[BenchModel],
           pass_a: dict[str, dict[str, Any]],
           pass_b: dict[str, dict[str, Any]], vendor: dict[str, float],
           k_results: dict[str, Any]) -> None:
    table = Table(title="latency per model (ms, median; benchmark_app: mean of its 2 runs)")
    for column in ("model", "benchmark_app", "openvino", "ov 95% CI", "ov floor",
                   f"ov K={K_CALLS}", "ov pass B", "onnxruntime", "torch-eager"):
        table.add_column(column, justify="right")
    for model in sorted(models, key=lambda m: vendor[m.name]):
        ov = pass_a["openvino"][model.name]
        ci = (f"{ov['ci_low_ms']:.4f}–{ov['ci_high_ms']:.4f}" if "ci_low_ms" in ov else "")
        table.add_row(model.name, f"{vendor[model.name]:.4f}", _fmt(ov), ci,
                      f"{ov.get('floor_ms', float('nan')):.5f}",
                      _fmt(k_results[model.name]) if model.name in k_results else "-",
                      _fmt(pass_b["openvino"][model.name]),
                      _fmt(pass_a["onnxruntime"][model.name]),
                      _fmt(pass_a["torch-eager"][model.name]))
    console.print(table)
    summary = Table(title="fidelity (targets: τ >= 0.9, median ratio 1 ± 0.10)")
    for column in ("comparison", "subset", "models", "Kendall τ", "median ratio"):
        summary.add_column(column, justify="right")
    for name, subsets in report["fidelity"].items():
        for subset, row in (subsets or {}).items():
            summary.add_row(name, subset, str(row["models"]), _num(row["kendall_tau"]),
                            _num(row["median_ratio"]))
    console.print(summary)
    if report["fidelity"]["onnxruntime_vs_perf_test"] is None:
        console.print(f"[yellow]ONNX Runtime vs its own perf test: not compared[/]: "
                      f"{report['onnxruntime_perf_test']}", soft_wrap=True)
    repeat = Table(title="repeatability, pass A vs B (targets: τ >= 0.9, median |Δ| <= 5%)")
    for column in ("target", "models", "Kendall τ", "median |Δ|"):
        repeat.add_column(column, justify="right")
    for name, row in report["repeatability"].items():
        delta = row["median_abs_delta"]
        repeat.add_row(name, str(row["models"]), _num(row["kendall_tau"]),
                       "-" if delta is None else f"{delta:.1%}")
    console.print(repeat)
    honest = Table(title="intervals: pass B's median inside pass A's 95% interval")
    for column in ("target", "models", "inside", "median half-width"):
        honest.add_column(column, justify="right")
    for name, row in report["interval_coverage"].items():
        share, width = row["b_inside_a_interval"], row["median_rel_half_width"]
        honest.add_row(name, str(row["models"]), "-" if share is None else f"{share:.0%}",
                       "-" if width is None else f"±{width:.1%}")
    console.print(honest)
    other = Table(title="for comparison only: other statistics of the round medians")
    for column in ("statistic", "ov vs bench τ all/sub", "ratio all/sub",
                   *(f"{name} τ / |Δ|" for name in report["repeatability"] if name != "benchmark_app")):
        other.add_column(column, justify="right")
    for statistic, row in report["alternative_statistics"].items():
        fid = row["openvino_vs_benchmark_app"]
        other.add_row(statistic,
                      f"{_num(fid['all']['kendall_tau'])}/{_num(fid['sub_0.2ms']['kendall_tau'])}",
                      f"{_num(fid['all']['median_ratio'])}/{_num(fid['sub_0.2ms']['median_ratio'])}",
                      *(f"{_num(r['kendall_tau'])} / {_pct(r['median_abs_delta'])}"
                        for r in row["repeatability"].values()))
    console.print(other)
    aware = Table(title="compiler awareness: Kendall τ between runtimes' rankings")
    aware.add_column("pair")
    aware.add_column("Kendall τ", justify="right")
    for pair, value in report["compiler_awareness"].items():
        aware.add_row(pair, _num(value))
    console.print(aware)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _plot(models: list[BenchModel], targets: dict[str, MeasureJob],
          ours: dict[str, dict[str, float]], vendor: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    ov = ours["openvino"]
    names = [m.name for m in models if m.name in ov]
    x = [vendor[n] for n in names]
    left.scatter(x, [ov[n] for n in names], s=18)
    bounds = [min(x) * 0.8, max(x) * 1.25]
    left.plot(bounds, bounds, color="grey", linewidth=1, label="y = x")
    left.set(xscale="log", yscale="log", xlabel="benchmark_app median (ms)",
             ylabel="paretonas OpenVINO median (ms)", title="fidelity vs benchmark_app")
    left.legend()
    order = sorted(names, key=lambda n: vendor[n])
    for name in targets:
        values = ours[name]
        right.plot(range(len(order)), [values.get(n, np.nan) for n in order], marker="o",
                   markersize=3, label=name)
    right.set(yscale="log", xlabel="model (sorted by benchmark_app latency)",
              ylabel="median latency (ms)", title="one model, three runtimes")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
