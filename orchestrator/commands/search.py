"""``paretonas run`` and ``paretonas validate``: a search described by a YAML config."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from orchestrator.config import SearchConfig


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run the search described by a YAML config")
    run.add_argument("config", help="path to the YAML config")
    add_overrides(run)
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="check a config without running it")
    validate.add_argument("config")
    add_overrides(validate)
    validate.set_defaults(handler=_validate)


def add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set budget.candidates=8")


def load_from_args(args: argparse.Namespace) -> SearchConfig:
    from orchestrator.config import load_config, parse_override

    return load_config(args.config, overrides=dict(map(parse_override, args.overrides)))


def _validate(args: argparse.Namespace, console: Console) -> int:
    config = load_from_args(args)
    console.print(f"{args.config}: valid ({len(config.targets)} targets, "
                  f"{len(config.objectives)} objectives, {config.budget.candidates} candidates)")
    return 0


def _run(args: argparse.Namespace, console: Console) -> int:
    from orchestrator.tracking import MlflowTracker
    from orchestrator.tune_driver import Progress as SearchProgress
    from orchestrator.tune_driver import run_search

    config = load_from_args(args)
    tracker = MlflowTracker.from_config(config)
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
    if tracker.ui_url():
        console.print(f"  its runs: {tracker.ui_url()}", soft_wrap=True)
    console.print(f"Ray Tune results: {result.output_dir}", soft_wrap=True)
    console.print(f"plots: {tracker.plots_dir}", soft_wrap=True)
    if tracker.unsynced:
        console.print(f"[yellow]MLflow has not taken {tracker.unsynced} journal entries[/] (server "
                      f"unreachable); they are kept: paretonas sync {result.output_dir}",
                      soft_wrap=True)
    return 0


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"
