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
    from orchestrator.preflight import Preflight
    from orchestrator.records import TrialRecord
    from orchestrator.tune_driver import Progress as SearchProgress


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run the search described by a YAML config")
    run.add_argument("config", help="path to the YAML config")
    add_overrides(run)
    run.add_argument("--show-arch", action="store_true",
                     help="show every front member's full architecture (all choices)")
    run.add_argument("--overwrite", action="store_true",
                     help="start over even if OUTPUT_DIR/NAME holds an earlier run of this search")
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


def check_from_args(args: argparse.Namespace, console: Console) -> tuple[SearchConfig, Preflight]:
    """Load the config and run the pre-flight checks ``run`` runs; print their warnings."""
    from orchestrator.preflight import preflight

    config = load_from_args(args)
    checked = preflight(config)
    for warning in checked.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True, highlight=False)
    return config, checked


def _validate(args: argparse.Namespace, console: Console) -> int:
    config, checked = check_from_args(args, console)
    console.print(f"{args.config}: valid ({len(config.targets)} targets, "
                  f"{len(config.objectives)} objectives, {config.budget.candidates} candidates); "
                  f"space of {checked.space.size():,} architectures; pre-flight checks passed")
    return 0


def _run(args: argparse.Namespace, console: Console) -> int:
    config, checked = check_from_args(args, console)  # before Ray and MLflow are imported
    return run_and_report(config, console, checked=checked, show_arch=args.show_arch,
                          overwrite=args.overwrite)


def run_and_report(config: SearchConfig, console: Console, *, checked: Preflight | None = None,
                   show_arch: bool = False, resume: bool = False, resume_errored: bool = False,
                   overwrite: bool = False) -> int:
    """Run (or resume) a search with progress on the console, then print its front."""
    from orchestrator.tracking import MlflowTracker
    from orchestrator.tune_driver import run_search

    tracker = MlflowTracker.from_config(config)
    console.print(f"[bold]paretonas[/] {config.name}: {config.budget.candidates} candidates of "
                  f"{config.space.name} on {', '.join(t.name for t in config.targets)}")
    if console.is_terminal:
        with Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
            console=console, transient=False,
        ) as progress:
            task = progress.add_task("candidates", total=config.budget.candidates,
                                     status="starting Ray and the hardware pool")

            def on_progress(update: SearchProgress) -> None:
                progress.update(task, completed=update.done, status=_progress_line(update))

            result = run_search(config, tracker=tracker, on_progress=on_progress, checked=checked,
                                resume=resume, resume_errored=resume_errored, overwrite=overwrite)
    else:  # a log file or a cluster job: one line per finished candidate
        def print_line(update: SearchProgress) -> None:
            console.print(f"[{update.done}/{update.budget}] {_progress_line(update)}",
                          soft_wrap=True, highlight=False, markup=False)

        result = run_search(config, tracker=tracker, on_progress=print_line, checked=checked,
                            resume=resume, resume_errored=resume_errored, overwrite=overwrite)

    summary = result.summary
    objectives = list(config.objectives)
    if config.constraints and summary.feasible == 0:
        console.print(f"[bold yellow]No candidate meets the constraints[/] "
                      f"({', '.join(config.constraints)}) among {len(result.records)}; "
                      "the table shows the closest ones (least violation), not a Pareto front: "
                      "relax the constraints or widen the space", soft_wrap=True)
        title = f"Closest to the constraints ({len(summary.front)} of {len(result.records)})"
    else:
        title = f"Pareto front ({len(summary.front)} of {len(result.records)} candidates)"
    table = Table(title=title)
    table.add_column("arch")
    for name in objectives:
        table.add_column(f"{name} ({config.objectives[name]})", justify="right")
    # weight-sharing mode's fine-tuned front (supernet.finetune_epochs)
    after_search = [name for name in ("finetuned_accuracy",)
                    if any(name in record.metrics for record in summary.front)]
    for name in after_search:
        table.add_column(name, justify="right")
    table.add_column("choices", overflow="fold" if show_arch else "ellipsis",
                     no_wrap=not show_arch, max_width=None if show_arch else 48)
    for record in summary.front:
        table.add_row(record.arch.key, *(_fmt(record.metrics[name]) for name in objectives),
                      *(_fmt(record.metrics[name]) if name in record.metrics else "-"
                        for name in after_search),
                      _choices(record))
    console.print(table)
    if result.confirmation is not None:
        console.print(result.confirmation.describe(), soft_wrap=True, highlight=False, markup=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True, highlight=False)
    failed = [r for r in result.records if not r.ok]
    if failed:
        console.print(f"[yellow]{len(failed)} candidate(s) failed[/]; first: {failed[0].error}",
                      soft_wrap=True)
    console.print(f"hypervolume {summary.hypervolume:.4g} | wall {result.wall_seconds:.1f} s")
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
    console.print(f"Ray Tune results: {result.experiment_dir}", soft_wrap=True)
    console.print(f"plots: {tracker.plots_dir}", soft_wrap=True)
    if tracker.unsynced:
        console.print(f"[yellow]MLflow has not taken {tracker.unsynced} journal entries[/] (server "
                      f"unreachable); they are kept: paretonas sync {result.output_dir}",
                      soft_wrap=True)
    return 0


def _progress_line(update: SearchProgress) -> str:
    last = update.last
    outcome = "ok" if last.ok else f"failed: {last.error}"
    return (f"failed {update.failed} | front {update.front_size} | "
            f"HV {update.hypervolume:.4g} | last {last.arch.key} {outcome}")


def _choices(record: TrialRecord) -> str:
    """The architecture's choices, compactly: ``depth=2 width=16 ops=[conv,pool]``."""
    def value(item: object) -> str:
        if isinstance(item, list | tuple):
            return "[" + ",".join(map(value, item)) + "]"
        return f"{item:g}" if isinstance(item, float) else str(item)

    return " ".join(f"{name}={value(item)}" for name, item in record.arch.values)


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"
