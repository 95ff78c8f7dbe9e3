"""Native TensorRT timing: host timer (paretonas's protocol) against CUDA events and trtexec.

For conv-classifier models of several input sizes (sampled by seed, untrained: latency
does not depend on the weights) and each precision, builds the engine through the
``tensorrt`` backend, binds the input once (``prepare``), then times ``run_prepared`` +
``synchronize`` with the host clock while reading each inference's CUDA-event GPU
time. Where ``trtexec`` is on PATH, the fp32 engines are also timed by it
(``GPU Compute Time`` median). Reports per model the medians, the host/GPU ratio (the
harness's overhead) and Kendall τ between the rankings; prints a table and writes JSON
to benchmarks/results/tensorrt_timing.json. Without a GPU or TensorRT it says why and
writes that reason instead.

    PYTHONPATH=. .venv/bin/python benchmarks/tensorrt_timing.py [--models 20] [--runs 300]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from scipy.stats import kendalltau

from evaluators import BackendOptions, export_onnx, get_backend
from evaluators.backends.tensorrt_backend import TensorRtModel
from search_spaces import InputSpec
from search_spaces.loading import resolve_space_factory

ROOT = Path(__file__).resolve().parents[1]
SIZES = (32, 64, 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--precisions", default="fp32,fp16,int8")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console(width=140)
    output = ROOT / "benchmarks" / "results" / "tensorrt_timing.json"
    output.parent.mkdir(parents=True, exist_ok=True)

    backend = get_backend("tensorrt")
    reason = backend.availability(BackendOptions(device=args.device))
    if reason:
        console.print(f"tensorrt unavailable: {escape(reason)}")
        output.write_text(json.dumps({"args": vars(args), "unavailable": reason}, indent=2))
        return

    trtexec = shutil.which("trtexec")
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="paretonas-trt-") as tmp:
        for index in range(args.models):
            size = SIZES[index % len(SIZES)]
            spec = InputSpec(shape=(3, size, size), num_classes=10)
            space = resolve_space_factory("conv-classifier")(input_spec=spec)
            arch = space.sample(rng)
            torch.manual_seed(args.seed + index)
            path = export_onnx(space.build(arch), example_input=space.example_input(1),
                               path=Path(tmp) / f"{arch.key}-{size}.onnx", candidate=arch.key)
            shape = (1, *spec.shape)
            calibration = rng.random((64, *spec.shape), dtype=np.float32)
            for precision in args.precisions.split(","):
                options = BackendOptions(device=args.device, precision=precision,
                                         calibration=calibration)
                row = _time(path, options, shape, args.warmup, args.runs)
                row.update(model=f"{arch.key}-{size}", precision=precision)
                if trtexec and precision == "fp32":
                    row["trtexec_median_ms"] = _trtexec(trtexec, path, shape)
                rows.append(row)
                console.log(row)

    summary = _summary(rows)
    table = Table(title="TensorRT: host timer vs CUDA events (medians over models)")
    for column in ("precision", "models", "host ms", "gpu ms", "host/gpu", "τ host~gpu",
                   "τ host~trtexec"):
        table.add_column(column, justify="right")
    for precision, entry in summary.items():
        table.add_row(precision, *(f"{entry[k]:.4g}" for k in (
            "models", "host_median_ms", "gpu_median_ms", "host_over_gpu", "tau_host_gpu",
            "tau_host_trtexec")))
    console.print(table)
    output.write_text(json.dumps({"args": vars(args), "trtexec": trtexec, "rows": rows,
                                  "summary": summary}, indent=2))
    console.print(f"wrote {output}")


def _time(path: Path, options: BackendOptions, shape: tuple[int, ...], warmup: int,
          runs: int) -> dict[str, Any]:
    start = time.perf_counter()
    compiled = get_backend("tensorrt").compile(path, options=options, input_shape=shape)
    compile_seconds = time.perf_counter() - start
    if not isinstance(compiled, TensorRtModel):
        raise TypeError(f"expected a TensorRtModel, got {type(compiled).__name__}")
    try:
        compiled.prepare(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
        for _ in range(warmup):
            compiled.run_prepared()
            compiled.synchronize()
        host, gpu = [], []
        for _ in range(runs):
            begin = time.perf_counter_ns()
            compiled.run_prepared()
            compiled.synchronize()
            host.append((time.perf_counter_ns() - begin) / 1e6)
            gpu.append(compiled.last_gpu_ms())
    finally:
        compiled.close()
    return {"host_median_ms": statistics.median(host), "gpu_median_ms": statistics.median(gpu),
            "compile_s": compile_seconds, "build_s": compiled.build_seconds}


def _trtexec(trtexec: str, path: Path, shape: tuple[int, ...]) -> float | None:
    """trtexec's median GPU compute time (ms) for ``path`` at ``shape``, fp32 (no TF32,
    as the backend builds fp32)."""
    dims = "x".join(str(d) for d in shape)
    result = subprocess.run(
        [trtexec, f"--onnx={path}", f"--shapes=input:{dims}", "--noDataTransfers", "--noTF32",
         "--warmUp=200", "--iterations=300"],
        capture_output=True, text=True, timeout=600, check=False)
    match = re.search(r"GPU Compute Time:.*?median = ([0-9.]+) ms", result.stdout)
    return float(match.group(1)) if match else None


def _summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    for precision in dict.fromkeys(str(r["precision"]) for r in rows):
        mine = [r for r in rows if r["precision"] == precision]
        host = [float(r["host_median_ms"]) for r in mine]
        gpu = [float(r["gpu_median_ms"]) for r in mine]
        pairs = [(float(r["host_median_ms"]), float(r["trtexec_median_ms"]))
                 for r in mine if r.get("trtexec_median_ms") is not None]
        summary[precision] = {
            "models": float(len(mine)),
            "host_median_ms": statistics.median(host),
            "gpu_median_ms": statistics.median(gpu),
            "host_over_gpu": statistics.median(h / g for h, g in zip(host, gpu, strict=True)),
            "tau_host_gpu": float(kendalltau(host, gpu).statistic) if len(mine) > 1 else float("nan"),
            "tau_host_trtexec": (float(kendalltau(*zip(*pairs, strict=True)).statistic)
                                 if len(pairs) > 1 else float("nan")),
        }
    return summary


if __name__ == "__main__":
    main()
