"""``paretonas list``: the registered plugins and whether each can run here."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def register(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("list", help="list spaces, searchers, backends, datasets")
    listing.set_defaults(handler=_list)


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
        device = BACKENDS.get(name).devices[0]  # its primary device: cpu, or cuda for TensorRT
        reason = BACKENDS.get(name).availability(BackendOptions(device=device))
        table.add_row("backend", name, f"available on {device}" if reason is None
                      else escape(reason))
    for kind, registry in (("space", SPACES), ("searcher", SEARCHERS), ("dataset", DATASETS),
                           ("backend", BACKENDS)):
        for name, reason in registry.unavailable().items():  # broken third-party plugins
            table.add_row(kind, name, f"[red]unavailable[/]: {escape(reason)}")
    console.print(table)
    return 0
