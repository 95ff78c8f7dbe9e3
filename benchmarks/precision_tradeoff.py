"""Latency and accuracy of the same trained candidates at fp32, fp16 and int8 per backend.

Trains a few conv-classifier candidates (sampled by seed) briefly, exports each, then
measures it on every target below through ``measure_onnx`` with a calibration set
(int8) and the held-out split (``accuracy@<target>``). Targets this machine cannot
run (no GPU, no TensorRT) are listed with their reason. Prints a table and a summary
(per target: median latency ratio and accuracy change against the same backend and
device at fp32) and writes JSON to benchmarks/results/precision_tradeoff_<dataset>.json.

    PYTHONPATH=. .venv/bin/python benchmarks/precision_tradeoff.py [--dataset digits]
        [--candidates 6] [--epochs 4] [--batch-size 1]

Latencies on a shared machine are inflated and noisy; rerun on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evaluators import (
    BackendOptions,
    TimingSettings,
    TrainingSettings,
    export_onnx,
    get_backend,
    load_dataset,
    measure_onnx,
    train_and_evaluate,
)
from evaluators.accuracy import EvaluationSet
from evaluators.quantize import calibration_samples
from search_spaces.loading import resolve_space_factory

ROOT = Path(__file__).resolve().parents[1]
#: (backend, device, precision)
TARGETS = [
    ("onnxruntime", "cpu", "fp32"), ("onnxruntime", "cpu", "int8"),
    ("openvino", "cpu", "fp32"), ("openvino", "cpu", "int8"),
    ("onnxruntime", "cuda", "fp32"),
    ("onnxruntime", "tensorrt", "fp32"), ("onnxruntime", "tensorrt", "fp16"),
    ("onnxruntime", "tensorrt", "int8"),
    ("tensorrt", "cuda", "fp32"), ("tensorrt", "cuda", "fp16"), ("tensorrt", "cuda", "int8"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--candidates", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console(width=140)

    dataset = load_dataset(args.dataset, seed=args.seed)
    space = resolve_space_factory("conv-classifier")(input_spec=dataset.input_spec)
    calibration = calibration_samples(dataset, seed=args.seed)
    evaluation = EvaluationSet.from_dataset(dataset)
    timing = TimingSettings(warmup_runs=20, min_runs=100, min_seconds=0.5)
    shape = (args.batch_size, *dataset.input_spec.shape)

    unavailable: dict[str, str] = {}
    runnable = []
    for backend, device, precision in TARGETS:
        reason = get_backend(backend).availability(BackendOptions(device=device,
                                                                  precision=precision))
        if reason:
            unavailable[f"{backend}/{device}/{precision}"] = reason
        else:
            runnable.append((backend, device, precision))

    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="paretonas-precision-") as tmp:
        for index in range(args.candidates):
            arch = space.sample(rng)
            torch.manual_seed(args.seed + index)
            model = space.build(arch)
            trained = train_and_evaluate(model, dataset, TrainingSettings(
                epochs=args.epochs, seed=args.seed))
            path = export_onnx(model, example_input=space.example_input(1),
                               path=Path(tmp) / f"{arch.key}.onnx", candidate=arch.key)
            for backend, device, precision in runnable:
                options = BackendOptions(device=device, precision=precision,
                                         calibration=calibration)
                measurement = measure_onnx(path, backend=backend, options=options,
                                           input_shape=shape, timing=timing,
                                           evaluation=evaluation, seed=args.seed)
                rows.append({"arch": arch.key, "backend": backend, "device": device,
                             "precision": precision, "torch_accuracy": trained.accuracy,
                             "accuracy": measurement.accuracy,
                             "median_ms": measurement.median_ms,
                             "compile_s": measurement.compile_seconds})
                console.log(f"{arch.key} {backend}/{device}/{precision}: "
                            f"{measurement.median_ms:.4f} ms, accuracy {measurement.accuracy:.4f}")

    summary = _summary(rows)
    table = Table(title=f"precision trade-off ({args.candidates} candidates on {args.dataset}, "
                        f"batch {args.batch_size})")
    table.add_column("target", no_wrap=True)
    for column in ("median ms", "latency / fp32", "accuracy", "Δ accuracy vs fp32"):
        table.add_column(column, justify="right")
    for name, entry in summary.items():
        table.add_row(name, f"{entry['median_ms']:.4f}", f"{entry['latency_ratio']:.2f}",
                      f"{entry['accuracy']:.4f}", f"{entry['accuracy_delta']:+.4f}")
    console.print(table)
    for name, reason in unavailable.items():
        console.print(f"[dim]{name} unavailable: {escape(reason)}[/dim]")

    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    output = results / f"precision_tradeoff_{args.dataset}.json"
    output.write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summary,
                                  "unavailable": unavailable}, indent=2))
    console.print(f"wrote {output}")


def _summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per target: medians over candidates, and ratios/deltas against fp32 on the same device."""
    by_key = {(r["arch"], r["backend"], r["device"], r["precision"]): r for r in rows}
    summary: dict[str, dict[str, float]] = {}
    for backend, device, precision in sorted({(r["backend"], r["device"], r["precision"])
                                              for r in rows}, key=str):
        mine = [r for r in rows if (r["backend"], r["device"], r["precision"])
                == (backend, device, precision)]
        ratios, deltas = [], []
        for row in mine:
            base = by_key.get((row["arch"], backend, device, "fp32"))
            if base is not None:
                ratios.append(float(row["median_ms"]) / float(base["median_ms"]))
                deltas.append(float(row["accuracy"]) - float(base["accuracy"]))
        summary[f"{backend}/{device}/{precision}"] = {
            "median_ms": statistics.median(float(r["median_ms"]) for r in mine),
            "accuracy": statistics.median(float(r["accuracy"]) for r in mine),
            "latency_ratio": statistics.median(ratios) if ratios else float("nan"),
            "accuracy_delta": statistics.median(deltas) if deltas else float("nan"),
        }
    return summary


if __name__ == "__main__":
    main()
