"""``paretonas resume``: continue an interrupted search from its experiment directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from orchestrator.commands.search import run_and_report


def register(commands: argparse._SubParsersAction) -> None:
    resume = commands.add_parser(
        "resume", help="continue a search that was killed or stopped (OUTPUT_DIR/NAME)")
    resume.add_argument("experiment", metavar="OUTPUT_DIR/NAME",
                        help="the experiment directory an earlier `paretonas run` made")
    resume.add_argument("--resume-errored", action="store_true",
                        help="also run again the trials that had failed")
    resume.set_defaults(handler=_resume)


def _resume(args: argparse.Namespace, console: Console) -> int:
    from orchestrator.experiment import ExperimentDir
    from orchestrator.preflight import check_resources

    path = Path(args.experiment).expanduser().resolve()
    config, _ = ExperimentDir(str(path)).load()
    # The directory may have moved since: Tune continues where it is now.
    config = config.model_copy(update={"output_dir": str(path.parent), "name": path.name})
    check_resources(config)  # on another machine now, Ray could wait for ever
    console.print(f"resuming {path}")
    return run_and_report(config, console, resume=True, resume_errored=args.resume_errored)
