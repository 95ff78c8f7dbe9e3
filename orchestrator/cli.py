"""``paretonas`` command line: run a search, validate a config, list plugins."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from orchestrator.errors import SearchInterrupted
from search_spaces.errors import ParetonasError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    console = Console()
    if not console.is_terminal:  # logs and pipes get whole tables, not 80-column ones
        console = Console(width=160)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
    try:
        return int(args.handler(args, console) or 0)
    except SearchInterrupted as interrupted:
        Console(stderr=True, soft_wrap=True).print(str(interrupted), highlight=False, markup=False)
        return 130
    except ParetonasError as error:
        if args.debug:
            raise
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(error))}",
                                                   highlight=False)
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted before the search started; nothing was trained")
        return 130


def _parser() -> argparse.ArgumentParser:
    from orchestrator.commands import COMMAND_MODULES

    parser = argparse.ArgumentParser(
        prog="paretonas", description="Hardware- and compiler-aware multi-objective NAS."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
