"""``paretonas front``, ``select`` and ``sync``: the front in MLflow, choosing and registering."""

from __future__ import annotations

import argparse
import os

from rich.console import Console
from rich.table import Table

DEFAULT_URI = "sqlite:///mlflow.db"


def register(commands: argparse._SubParsersAction) -> None:
    front = commands.add_parser("front", help="print a search's current Pareto front from MLflow")
    _common(front)
    front.set_defaults(handler=_front)

    select = commands.add_parser(
        "select", help="pick a front member by condition and objective; optionally register it")
    _common(select)
    select.add_argument("--where", default=None,
                        help='conditions, e.g. "latency_ms@cpu-openvino <= 5 and accuracy >= 0.9"')
    goal = select.add_mutually_exclusive_group(required=True)
    goal.add_argument("--maximize", metavar="METRIC")
    goal.add_argument("--minimize", metavar="METRIC")
    select.add_argument("--register", metavar="NAME", help="register it in the Model Registry")
    select.add_argument("--alias", help="set this alias (e.g. champion) on the new version")
    select.set_defaults(handler=_select)

    sync = commands.add_parser("sync", help="send a search's journal to MLflow (after an outage)")
    sync.add_argument("output_dir", help="the search's output_dir (holds tracking-journal.jsonl)")
    sync.add_argument("--uri", default=None, help="tracking URI (default: the one the search used)")
    sync.set_defaults(handler=_sync)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="MLflow experiment name (tracking.experiment)")
    parser.add_argument("--uri", default=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI),
                        help="tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--search", default=None,
                        help="parent run id or name of the search (default: the latest)")


def _front(args: argparse.Namespace, console: Console) -> int:
    from orchestrator.selection import front

    members = front(args.experiment, uri=args.uri, search=args.search)
    columns = sorted({k for m in members for k in m.metrics
                      if k in ("accuracy", "finetuned_accuracy", "params")
                      or k.startswith("latency_ms/")})
    tuned = any(m.finetune_error for m in members) or "finetuned_accuracy" in columns
    table = Table(title=f"Pareto front of {args.experiment!r} ({len(members)} members)")
    for name in ["run", "arch", *columns, "model", *(["fine-tuned"] if tuned else [])]:
        table.add_column(name, justify="right" if name in columns else "left")
    for member in members:
        # a failed fine-tuning leaves the model with its inherited weights
        state = "failed" if member.finetune_error else (
            "yes" if "finetuned_accuracy" in member.metrics else "no")
        table.add_row(member.run_id, member.arch_key,
                      *(f"{member.metrics[c]:.4g}" if c in member.metrics else "" for c in columns),
                      "yes" if member.model_id else "not yet", *([state] if tuned else []))
    console.print(table)
    return 0


def _select(args: argparse.Namespace, console: Console) -> int:
    from orchestrator.selection import register, select

    chosen = select(args.experiment, uri=args.uri, where=args.where, maximize=args.maximize,
                    minimize=args.minimize, search=args.search)
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(chosen.metrics.items())
                        if k == "accuracy" or k.startswith("latency_ms/"))
    console.print(f"selected run {chosen.run_id} ({chosen.arch_key}): {metrics}", soft_wrap=True)
    if chosen.finetune_error:
        console.print(f"[yellow]warning:[/] its model keeps inherited weights: "
                      f"{chosen.finetune_error}", soft_wrap=True, highlight=False)
    if args.register:
        version = register(chosen, name=args.register, uri=args.uri, alias=args.alias)
        alias = f" alias {args.alias!r}" if args.alias else ""
        console.print(f"registered {args.register!r} version {version.version}{alias}: "
                      f"models:/{args.register}/{version.version}", soft_wrap=True)
    elif args.alias:
        console.print("[yellow]--alias needs --register NAME[/]")
        return 2
    return 0


def _sync(args: argparse.Namespace, console: Console) -> int:
    from orchestrator.tracking import sync

    sent = sync(args.output_dir, uri=args.uri)
    console.print(f"sent {sent} journal entries to MLflow" if sent
                  else "MLflow already has everything in the journal")
    return 0
