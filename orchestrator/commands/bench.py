"""``paretonas bench record|compare``: recorded tables and searcher comparisons on them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

from orchestrator.commands.search import add_overrides, load_from_args

DEFAULT_SEARCHERS = ("random", "nsga2", "regularized", "optuna", "pymoo-nsga2")


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="record tables of evaluations and compare "
                                              "searchers on them (tabular replay)")
    actions = bench.add_subparsers(dest="bench_command", required=True, metavar="ACTION")

    record = actions.add_parser("record", help="evaluate a whole (small) space or a sample "
                                               "through the normal search into a table file")
    record.add_argument("config", help="path to the YAML config (its space, targets, training)")
    record.add_argument("--out", required=True, help="table file to write (JSON)")
    record.add_argument("--sample", type=int, default=None,
                        help="evaluate this many distinct architectures (default: the whole space)")
    add_overrides(record)
    record.set_defaults(handler=_record)

    compare = actions.add_parser("compare", help="replay searchers on a table; print the "
                                                 "hypervolume table and plot the curves")
    compare.add_argument("table", help="table file, or nb201:cifar10|cifar100|imagenet")
    compare.add_argument("--objective", dest="objectives", action="append", default=[],
                         metavar="METRIC:min|max",
                         help="objective (repeat; default accuracy:max and the first latency)")
    compare.add_argument("--searcher", dest="searchers", action="append", default=[],
                         metavar="NAME", help=f"searcher (repeat; default {', '.join(DEFAULT_SEARCHERS)})")
    compare.add_argument("--budget", type=int, default=100)
    compare.add_argument("--seeds", type=int, default=10)
    compare.add_argument("--workers", type=int, default=1, help="simulated parallel trials")
    compare.add_argument("--processes", type=int, default=1, help="seeds run in parallel")
    compare.add_argument("--plot", default=None, help="PNG file for the hypervolume curves")
    compare.set_defaults(handler=_compare)


def _record(args: argparse.Namespace, console: Console) -> int:
    from evaluators.data import load_dataset
    from orchestrator.errors import ConfigError
    from orchestrator.replay import save_table, table_from_records
    from orchestrator.tracking import MlflowTracker
    from orchestrator.tune_driver import run_search
    from search_spaces import create_space

    config = load_from_args(args)
    dataset = load_dataset(config.dataset.name, seed=config.seed)
    space = create_space(config.space.name, input_spec=dataset.input_spec,
                         options=config.space.options)
    count = space.size() if args.sample is None else args.sample
    if count < 1 or count > space.size():
        raise ConfigError(f"--sample must be in 1..{space.size()} (the space's size), got {count}")
    # random search proposes every architecture once before repeating: a uniform sample
    config = config.model_copy(update={
        "searcher": config.searcher.model_copy(update={"name": "random", "options": {}}),
        "budget": config.budget.model_copy(update={"candidates": count}),
    })
    console.print(f"recording {count} of {space.size()} architectures of {space.name}")
    tracker = MlflowTracker(uri=config.tracking.uri, experiment=config.tracking.experiment,
                            log_models=False)
    result = run_search(config, tracker=tracker)
    table = table_from_records(space, result.records, name=Path(args.out).stem,
                               space_options=dict(config.space.options))
    save_table(table, args.out)
    failed = sum(not record.ok for record in result.records)
    console.print(f"wrote {args.out}: {len(table)} rows, metrics {', '.join(table.metrics)}"
                  + (f" ({failed} failed)" if failed else ""), soft_wrap=True)
    return 0


def _compare(args: argparse.Namespace, console: Console) -> int:
    from orchestrator.errors import ConfigError
    from orchestrator.objectives import ObjectiveSet
    from orchestrator.replay import SearcherSpec, compare, load_table
    from orchestrator.searchers import SEARCHERS

    table = load_table(args.table)
    if args.budget < 1 or args.seeds < 1:
        raise ConfigError(f"--budget and --seeds must be >= 1, got {args.budget} and {args.seeds}")
    objectives = ObjectiveSet(tuple(_objective(text, table.metrics) for text in args.objectives)
                              or _default_objectives(table.metrics))
    names = args.searchers or list(DEFAULT_SEARCHERS)
    for name in names:
        SEARCHERS.get(name)  # unknown names fail here, listing the known ones
    specs = [SearcherSpec(name, name) for name in dict.fromkeys(names)]
    curves = compare(table, objectives, specs, seeds=range(args.seeds), budget=args.budget,
                     workers=args.workers, processes=args.processes)
    budgets = sorted({b for b in (args.budget // 4, args.budget // 2, args.budget) if b >= 1})
    view = RichTable(title=f"{table.name}: hypervolume / true front's ({', '.join(objectives.names)}),"
                           f" mean ± s.e. over {args.seeds} seeds")
    view.add_column("searcher")
    for budget in budgets:
        view.add_column(f"@{budget}", justify="right")
    for label, curve in curves.items():
        cells = []
        for budget in budgets:
            values = curve.at(budget)
            se = values.std(ddof=1) / len(values) ** 0.5 if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.3f} ± {se:.3f}")
        view.add_row(label, *cells)
    console.print(view)
    if args.plot:
        _plot(curves, args.plot, title=f"{table.name} ({', '.join(objectives.names)})")
        console.print(f"curves: {args.plot}", soft_wrap=True)
    return 0


def _objective(text: str, metrics: list[str]) -> Any:
    from orchestrator.errors import ConfigError
    from orchestrator.objectives import Objective

    metric, _, direction = text.rpartition(":")
    if direction not in ("min", "max") or not metric:
        raise ConfigError(f"--objective {text!r} must look like METRIC:min or METRIC:max")
    if metric not in metrics:
        raise ConfigError(f"--objective {text!r}: unknown metric; known: {', '.join(metrics)}")
    return Objective(metric, direction)  # type: ignore[arg-type]


def _default_objectives(metrics: list[str]) -> tuple[Any, ...]:
    from orchestrator.errors import ConfigError
    from orchestrator.objectives import Objective

    latency = [m for m in metrics if m == "latency_ms" or m.startswith("latency_ms@")]
    if "accuracy" not in metrics or not latency:
        raise ConfigError(f"give --objective METRIC:min|max (at least two); known metrics: "
                          f"{', '.join(metrics)}")
    return Objective("accuracy", "max"), Objective(latency[0], "min")


def _plot(curves: dict[str, Any], path: str, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, curve in curves.items():
        mean = curve.ratios.mean(axis=0)
        se = curve.ratios.std(axis=0, ddof=1) / len(curve.ratios) ** 0.5 \
            if len(curve.ratios) > 1 else 0 * mean
        axes.plot(curve.steps, mean, label=label)
        axes.fill_between(curve.steps, mean - se, mean + se, alpha=0.2)
    axes.set_xlabel("evaluations")
    axes.set_ylabel("hypervolume / true front's")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
