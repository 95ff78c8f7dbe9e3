"""``paretonas submit`` and ``paretonas jobs``: searches as Ray jobs on a cluster."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from orchestrator.commands.search import add_overrides, load_from_args

if TYPE_CHECKING:
    from orchestrator.jobs import JobsClient


def register(commands: argparse._SubParsersAction) -> None:
    submit = commands.add_parser("submit", help="run a search on a Ray cluster as a Ray job")
    submit.add_argument("config", help="path to the YAML config")
    _add_address(submit)
    add_overrides(submit)
    submit.add_argument("--job-id", help="the job's id (default: paretonas-NAME-RANDOM)")
    submit.add_argument("--pip", action="append", default=[], metavar="REQUIREMENT",
                        help="a pip requirement the cluster installs for this job (repeatable)")
    submit.add_argument("--ship-code", action="store_true",
                        help="send this paretonas checkout with the job (clusters without the image)")
    submit.add_argument("--follow", action="store_true",
                        help="stream the job's log until it ends; exit non-zero unless it succeeds")
    submit.set_defaults(handler=_submit)

    jobs = commands.add_parser("jobs", help="list, inspect, follow or stop Ray jobs on a cluster")
    actions = jobs.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the cluster's jobs")
    _add_address(listing)
    listing.set_defaults(handler=_list)
    for name, handler, text in (("status", _status, "a job's status"),
                                ("stop", _stop, "stop a running job")):
        action = actions.add_parser(name, help=text)
        action.add_argument("job_id", metavar="JOB")
        _add_address(action)
        action.set_defaults(handler=handler)
    logs = actions.add_parser("logs", help="a job's log")
    logs.add_argument("job_id", metavar="JOB")
    logs.add_argument("--follow", "-f", action="store_true", help="stream it until the job ends")
    _add_address(logs)
    logs.set_defaults(handler=_logs)


def _add_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="the head's dashboard, e.g. http://HEAD:8265 "
                                          "(default: $RAY_API_SERVER_ADDRESS)")


def _client(args: argparse.Namespace) -> JobsClient:
    from orchestrator.jobs import JobsClient

    return JobsClient(address=args.address)


def _submit(args: argparse.Namespace, console: Console) -> int:
    from orchestrator.jobs import check_cluster_paths, plan_submission
    from orchestrator.tracking import check_cluster_tracking

    config = load_from_args(args)
    check_cluster_paths(config)
    client = _client(args)
    nodes = client.alive_nodes()
    check_cluster_tracking(config.tracking.uri, nodes=nodes, address=client.address)
    if nodes > 1:
        console.print(f"[yellow]note[/]: output_dir {config.output_dir} must be shared storage "
                      f"mounted at the same path on all {nodes} nodes (NFS, a volume)")
    with tempfile.TemporaryDirectory(prefix="paretonas-submit-") as staging:
        submission = plan_submission(config, staging_dir=Path(staging), job_id=args.job_id,
                                     pip=args.pip, ship_code=args.ship_code)
        job_id = client.submit(submission)
    console.print(f"submitted {job_id} to {client.address}", soft_wrap=True)
    console.print(f"  follow it: paretonas jobs logs {job_id} --follow --address {client.address}",
                  soft_wrap=True)
    if not args.follow:
        return 0
    return _follow(client, job_id, console)


def _list(args: argparse.Namespace, console: Console) -> int:
    client = _client(args)
    table = Table(title=f"Ray jobs at {client.address}")
    for column in ("job", "status", "started", "search", "message"):
        table.add_column(column)
    for job in client.jobs():
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.started_at)) \
            if job.started_at else ""
        table.add_row(job.job_id, job.status, started, job.metadata.get("paretonas.search", ""),
                      job.message[:80])
    console.print(table)
    return 0


def _status(args: argparse.Namespace, console: Console) -> int:
    job = _client(args).info(args.job_id)
    console.print(f"{job.job_id}: {job.status}", highlight=False)
    if job.message:
        console.print(f"  {job.message}", highlight=False, soft_wrap=True)
    return 0


def _logs(args: argparse.Namespace, console: Console) -> int:
    client = _client(args)
    if args.follow:
        return _follow(client, args.job_id, console)
    console.out(client.logs(args.job_id), end="", highlight=False)
    return 0


def _stop(args: argparse.Namespace, console: Console) -> int:
    client = _client(args)
    stopped = client.stop(args.job_id)
    job = client.info(args.job_id)
    console.print(f"{job.job_id}: {'stop requested' if stopped else 'already ended'} ({job.status})",
                  highlight=False)
    return 0


def _follow(client: JobsClient, job_id: str, console: Console) -> int:
    for chunk in client.follow(job_id):
        console.out(chunk, end="", highlight=False)
    job = client.wait(job_id, timeout_s=60)
    console.print(f"{job.job_id}: {job.status}" + (f" ({job.message})" if job.message else ""),
                  highlight=False, soft_wrap=True)
    return 0 if job.status == "SUCCEEDED" else 1
