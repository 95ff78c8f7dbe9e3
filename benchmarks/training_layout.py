"""From-scratch training step time: contiguous against channels-last tensors, side by side.

For a few models of the built-in spaces (the quickstart's conv classifier on digits, the
largest and smallest subnet of the weight-sharing config's MobileNetV3-style space on
Fashion-MNIST), times ``--steps`` AdamW steps on one thread in each memory layout,
alternating the layouts ``--repeats`` times so both see the same machine, and reports
the median time per step, the speed-up of channels-last and the layout
``evaluators.training.training_layout`` picks. Prints a table and writes JSON
(``--output``, default benchmarks/results/training_layout.json).

    .venv/bin/python benchmarks/training_layout.py [--steps 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from evaluators.data import Dataset, load_dataset
from evaluators.training import training_layout
from orchestrator.config import load_config
from orchestrator.weight_sharing import elastic_space
from search_spaces import create_space

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}


def _seconds_per_step(make: Callable[[], torch.nn.Module], dataset: Dataset,
                      layout: torch.memory_format, steps: int, batch_size: int) -> float:
    torch.manual_seed(0)
    model = make().to(memory_format=layout)  # type: ignore[call-overload]
    x = torch.tensor(dataset.train_x).contiguous(memory_format=layout)
    y = torch.tensor(dataset.train_y)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        first = step * batch_size % (len(x) - batch_size)
        batch = slice(first, first + batch_size)
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps


def _models() -> list[tuple[str, Callable[[], torch.nn.Module], Dataset]]:
    digits = load_dataset("digits", seed=0)
    quickstart = load_config(ROOT / "configs" / "quickstart.yaml")
    conv = create_space(quickstart.space.name, input_spec=digits.input_spec,
                        options=quickstart.space.options)
    rng = np.random.default_rng(0)
    models: list[tuple[str, Callable[[], torch.nn.Module], Dataset]] = [
        (f"quickstart {arch.key}", partial(conv.build, arch), digits)
        for arch in (conv.sample(rng) for _ in range(3))
    ]
    config = load_config(ROOT / "configs" / "weight_sharing.yaml")
    fashion = load_dataset(config.dataset.name, seed=0)
    space = elastic_space(config, fashion.input_spec)
    models += [("mobilenet-v3 largest", partial(space.build, space.largest()), fashion),
               ("mobilenet-v3 smallest", partial(space.build, space.smallest()), fashion)]
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "training_layout.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    for name, make, dataset in _models():
        times: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
        for _ in range(args.repeats):
            for layout, memory_format in LAYOUTS.items():
                times[layout].append(_seconds_per_step(make, dataset, memory_format,
                                                       args.steps, args.batch_size))
        medians = {layout: statistics.median(values) for layout, values in times.items()}
        picked = "channels-last" if training_layout(make()) == torch.channels_last else "contiguous"
        rows.append({"model": name, "ms_per_step": {k: v * 1e3 for k, v in medians.items()},
                     "speedup_channels_last": medians["contiguous"] / medians["channels-last"],
                     "picked": picked})
    table = Table(title=f"training step, 1 thread, batch {args.batch_size} "
                        f"(median of {args.repeats} alternating runs of {args.steps} steps)")
    for column in ("model", "contiguous ms", "channels-last ms", "speed-up", "picked"):
        table.add_column(column, justify="left" if column in ("model", "picked") else "right")
    for row in rows:
        table.add_row(row["model"], f"{row['ms_per_step']['contiguous']:.1f}",
                      f"{row['ms_per_step']['channels-last']:.1f}",
                      f"{row['speedup_channels_last']:.2f}x", row["picked"])
    Console().print(table)
    report = {"steps": args.steps, "repeats": args.repeats, "batch_size": args.batch_size,
              "load_average": os.getloadavg(), "rows": rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
