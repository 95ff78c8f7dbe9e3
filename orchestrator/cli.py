"""``paretonas`` command line: run a search, validate a config, list plugins."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from search_spaces.errors import ParetonasError

if TYPE_CHECKING:
    from orchestrator.config import SearchConfig


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    console = Console()
    if not console.is_terminal:  # logs and pipes get whole tables, not 80-column ones
        console = Console(width=160)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
    try:
        return int(args.handler(args, console) or 0)
    except ParetonasError as error:
        if args.debug:
            raise
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {error}", highlight=False)
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted; finished trials are in the tracking store")
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paretonas", description="Hardware- and compiler-aware multi-objective NAS."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the search described by a YAML config")
    run.add_argument("config", help="path to the YAML config")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set budget.candidates=8")
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="check a config without running it")
    validate.add_argument("config")
    validate.add_argument("--set", dest="overrides", action="append", default=[],
                          metavar="KEY=VALUE")
    validate.set_defaults(handler=_validate)

    listing = commands.add_parser("list", help="list spaces, searchers, backends, datasets")
    listing.set_defaults(handler=_list)
    return parser


def _load(args: argparse.Namespace) -> SearchConfig:
    from orchestrator.config import load_config, parse_override

    return load_config(args.config, overrides=dict(map(parse_override, args.overrides)))


def _validate(args: argparse.Namespace, console: Console) -> int:
    config = _load(args)
    console.print(f"{args.config}: valid ({len(config.targets)} targets, "
                  f"{len(config.objectives)} objectives, {config.budget.candidates} candidates)")
    return 0


def _list(args: argparse.Namespace, console: Console) -> int:
    from evaluators.backends import BACKENDS
    from evaluators.backends.base import BackendOptions
    from evaluators.data import DATASETS
    from orchestrator.searchers import SEARCHERS
    from search_spaces.loading import SPACES, resolve_space_factory

    resolve_space_factory("conv-classifier")  # loads the built-in spaces
    table = Table(title="paretonas plugins")
    for column in ("kind", "name", "status"):
        table.add_column(column)
    for name in SPACES.names():
        table.add_row("space", name, "")
    for name in SEARCHERS.names():
        table.add_row("searcher", name, "")
    for name in DATASETS.names():
        table.add_row("dataset", name, "")
    for name in BACKENDS.names():
        reason = BACKENDS.get(name).availability(BackendOptions())
        table.add_row("backend", name, "available on cpu" if reason is None else reason)
    console.print(table)
    return 0


def _run(args: argparse.Namespace, console: Console) -> int:
    from orchestrator.tracking import MlflowTracker
    from orchestrator.tune_driver import Progress as SearchProgress
    from orchestrator.tune_driver import run_search

    config = _load(args)
    tracker = MlflowTracker(uri=config.tracking.uri, experiment=config.tracking.experiment,
                            log_models=config.tracking.log_models)
    console.print(f"[bold]paretonas[/] {config.name}: {config.budget.candidates} candidates of "
                  f"{config.space.name} on {', '.join(t.name for t in config.targets)}")
    with Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(),
        MofNCompleteColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
        console=console, transient=False,
    ) as progress:
        task = progress.add_task("candidates", total=config.budget.candidates,
                                 status="starting Ray and the hardware pool")

        def on_progress(update: SearchProgress) -> None:
            last = update.last
            outcome = "ok" if last.ok else f"[red]failed[/]: {last.error}"
            progress.update(task, completed=update.done, status=(
                f"failed {update.failed} | front {update.front_size} | "
                f"HV {update.hypervolume:.4g} | last {last.arch.key} {outcome}"
            ))

        result = run_search(config, tracker=tracker, on_progress=on_progress)

    objectives = list(config.objectives)
    table = Table(title=f"Pareto front ({len(result.summary.front)} of "
                        f"{len(result.records)} candidates)")
    table.add_column("arch")
    for name in objectives:
        table.add_column(f"{name} ({config.objectives[name]})", justify="right")
    for record in result.summary.front:
        table.add_row(record.arch.key, *(_fmt(record.metrics[name]) for name in objectives))
    console.print(table)
    failed = [r for r in result.records if not r.ok]
    if failed:
        console.print(f"[yellow]{len(failed)} candidate(s) failed[/]; first: {failed[0].error}")
    console.print(f"hypervolume {result.summary.hypervolume:.4g} | wall {result.wall_seconds:.1f} s")
    # soft_wrap: paths and commands stay on one line, ready to copy
    console.print(f"MLflow: {config.tracking.uri}, experiment {config.tracking.experiment!r}, "
                  f"run {result.run_id}", soft_wrap=True)
    if config.tracking.uri.startswith("sqlite:"):
        beside = Path(sys.executable).parent / "mlflow"  # the venv's mlflow, if not on PATH
        mlflow = "mlflow" if shutil.which("mlflow") == str(beside) or not beside.exists() else beside
        console.print(f"  open it with: {mlflow} ui --backend-store-uri {config.tracking.uri}",
                      soft_wrap=True)
    console.print(f"Ray Tune results: {result.output_dir}", soft_wrap=True)
    return 0


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


if __name__ == "__main__":
    sys.exit(main())
