"""Searches as Ray jobs: submit, list, follow, stop (Ray's Job Submission SDK).

A submitted search is ``paretonas run search.yaml`` run by the cluster as a Ray job.
The config (overrides applied) and, when the space is a user module, that module travel
in the job's ``runtime_env``; the cluster's nodes already have paretonas (docker/).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shlex
import shutil
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.config import SearchConfig
from orchestrator.errors import ClusterError, ConfigError
from orchestrator.ray_session import AUTH_HINT, check_reachable, use_cluster_token

#: The packages that make up paretonas (shipped with ``ship_code``).
PARETONAS_PACKAGES = ("search_spaces", "evaluators", "hardware_pool", "orchestrator")
CONFIG_NAME = "search.yaml"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
ADDRESS_ENV = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")


@dataclass(frozen=True)
class JobSummary:
    """One Ray job as the CLI shows it."""

    job_id: str
    status: str
    entrypoint: str
    message: str
    started_at: float | None
    ended_at: float | None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class Submission:
    """What is sent to the cluster for one search."""

    job_id: str
    entrypoint: str
    runtime_env: dict[str, Any]
    metadata: dict[str, str]


def dashboard_address(address: str | None) -> str:
    """``--address``, else ``RAY_API_SERVER_ADDRESS`` / an http ``RAY_ADDRESS``."""
    for candidate in (address, *(os.environ.get(name) for name in ADDRESS_ENV)):
        if candidate:
            if not candidate.startswith(("http://", "https://")):
                raise ClusterError(f"Ray Jobs address {candidate!r} must be the head's dashboard, "
                                   f"e.g. http://HEAD:8265")
            return candidate.rstrip("/")
    raise ClusterError("no cluster given: pass --address http://HEAD:8265 (the head's dashboard) "
                       "or set RAY_API_SERVER_ADDRESS")


def plan_submission(
    config: SearchConfig,
    *,
    staging_dir: Path,
    job_id: str | None = None,
    pip: Sequence[str] = (),
    ship_code: bool = False,
) -> Submission:
    """Write the job's working directory under ``staging_dir`` and describe the job.

    ``ship_code`` also sends paretonas itself (for clusters whose image lacks it or has
    an older copy); ``pip`` lists requirements the cluster installs for this job.
    """
    check_cluster_paths(config)
    staging_dir.mkdir(parents=True, exist_ok=True)
    document = config.model_dump(mode="json", exclude_unset=True)
    if config.ray.address is None:  # in the job: the cluster it runs on, not a private Ray
        document.setdefault("ray", {})["address"] = "auto"
    (staging_dir / CONFIG_NAME).write_text(yaml.safe_dump(document, sort_keys=False))
    py_modules = []
    for path in _user_modules(config.space.name):
        if path.is_dir():
            py_modules.append(str(path))
        else:  # a single-file module rides in the working directory (on the job's sys.path)
            shutil.copy2(path, staging_dir / path.name)
    if ship_code:
        root = Path(__file__).resolve().parents[1]
        py_modules += [str(root / package) for package in PARETONAS_PACKAGES]
    runtime_env: dict[str, Any] = {"working_dir": str(staging_dir),
                                   "env_vars": {"PYTHONUNBUFFERED": "1"}}
    if py_modules:
        runtime_env["py_modules"] = py_modules
    if pip:
        runtime_env["pip"] = list(pip)
    job_id = job_id or f"paretonas-{_slug(config.name)}-{secrets.token_hex(4)}"
    return Submission(
        job_id=job_id,
        entrypoint=f"python -m orchestrator run {shlex.quote(CONFIG_NAME)}",
        runtime_env=runtime_env,
        metadata={"paretonas.search": config.name, "paretonas.space": config.space.name},
    )


def check_cluster_paths(config: SearchConfig) -> None:
    """A job runs in a temporary directory on the head: relative paths would vanish with it."""
    uri = config.tracking.uri
    if uri.startswith("sqlite:") and not uri.startswith("sqlite:////"):
        raise ConfigError(f"tracking.uri {uri!r} is relative: the job runs in a temporary directory "
                          f"on the cluster; use an MLflow server (http://HOST:5000) or an absolute "
                          f"sqlite:////path on storage the head shares")
    if not Path(config.output_dir).is_absolute():
        raise ConfigError(f"output_dir {config.output_dir!r} is relative: the job runs in a temporary "
                          f"directory on the cluster; use shared storage (an absolute path mounted "
                          f"at the same place on every node, such as NFS)")
    checkpoint = config.supernet.checkpoint
    if config.mode == "weight_sharing" and checkpoint and not Path(checkpoint).is_absolute():
        raise ConfigError(f"supernet.checkpoint {checkpoint!r} is relative: the job runs in a "
                          f"temporary directory on the cluster, where it does not exist; give its "
                          f"absolute path on storage the cluster's nodes share")


class JobsClient:
    """The Jobs API of one cluster (its head's dashboard address)."""

    def __init__(self, *, address: str) -> None:
        from ray.exceptions import AuthenticationError
        from ray.job_submission import JobSubmissionClient

        self.address = dashboard_address(address)
        check_reachable(self.address)
        use_cluster_token(self.address)
        try:
            self._client = JobSubmissionClient(self.address)
        except (ConnectionError, AuthenticationError) as error:
            raise ClusterError(f"cannot use the Ray Jobs API at {self.address}: "
                               f"{str(error).strip().splitlines()[0]}; {AUTH_HINT}") from None

    def submit(self, submission: Submission) -> str:
        try:
            return str(self._client.submit_job(
                entrypoint=submission.entrypoint, submission_id=submission.job_id,
                runtime_env=submission.runtime_env, metadata=submission.metadata,
            ))
        except RuntimeError as error:
            raise ClusterError(f"the cluster at {self.address} refused the job: {error}") from None

    def alive_nodes(self) -> int:
        from ray.util.state import list_nodes

        # A head that has just started may not list itself yet: a live cluster has >= 1 node.
        deadline = time.monotonic() + 30
        while True:
            nodes = list_nodes(address=self.address, raise_on_missing_output=False)
            alive = sum(1 for node in nodes if node.state == "ALIVE")
            if alive or time.monotonic() > deadline:
                return alive
            time.sleep(1)

    def jobs(self) -> list[JobSummary]:
        details = sorted(self._client.list_jobs(), key=lambda d: d.start_time or 0)
        # Drivers that connected with ray.init() are jobs too; only submissions are listed.
        return [_summary(d) for d in details if str(getattr(d.type, "value", d.type)) == "SUBMISSION"]

    def info(self, job_id: str) -> JobSummary:
        return _summary(self._call(job_id, self._client.get_job_info))

    def logs(self, job_id: str) -> str:
        return str(self._call(job_id, self._client.get_job_logs))

    def follow(self, job_id: str) -> Iterator[str]:
        """The job's log as it is written, until the job ends."""
        import asyncio

        self.info(job_id)  # a clear error for an unknown id before streaming
        stream: AsyncIterator[str] = self._client.tail_job_logs(job_id)
        loop = asyncio.new_event_loop()
        try:
            while True:
                try:
                    yield loop.run_until_complete(anext(stream))
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(stream.aclose())  # type: ignore[attr-defined]
            loop.close()

    def stop(self, job_id: str) -> bool:
        return bool(self._call(job_id, self._client.stop_job))

    def wait(self, job_id: str, *, timeout_s: float, poll_s: float = 1.0,
             until: frozenset[str] = TERMINAL) -> JobSummary:
        """Poll until the job's status is in ``until``; a ``ClusterError`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            summary = self.info(job_id)
            if summary.status in until:
                return summary
            if time.monotonic() > deadline:
                raise ClusterError(f"job {job_id} is still {summary.status} after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def _call(self, job_id: str, method: Any) -> Any:
        try:
            return method(job_id)
        except RuntimeError as error:
            if "404" in str(error) or "does not exist" in str(error):
                raise ClusterError(f"no job {job_id!r} on {self.address}; `paretonas jobs list "
                                   f"--address {self.address}` lists the jobs there") from None
            raise ClusterError(f"job {job_id} at {self.address}: {error}") from None


def _seconds(milliseconds: int | None) -> float | None:
    return milliseconds / 1000 if milliseconds else None


def _summary(details: Any) -> JobSummary:
    return JobSummary(
        job_id=str(details.submission_id or details.job_id),
        status=str(getattr(details.status, "value", details.status)),
        entrypoint=details.entrypoint or "",
        message=details.message or "",
        started_at=_seconds(details.start_time),
        ended_at=_seconds(details.end_time),
        metadata=dict(details.metadata or {}),
    )


def _user_modules(space: str) -> list[Path]:
    """The file or package of a ``module:attribute`` space that is not installed."""
    if ":" not in space:
        return []
    top = space.partition(":")[0].split(".")[0]
    if top in PARETONAS_PACKAGES:
        return []
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        raise ConfigError(f"space.name: cannot find module {top!r} to send with the job")
    origin = Path(spec.origin)
    installed = any(part in {"site-packages", "dist-packages"} for part in origin.parts)
    if installed or origin.is_relative_to(Path(sys.base_prefix)):
        return []  # the cluster's image has it (or pip: installs it)
    return [origin.parent if spec.submodule_search_locations else origin]


def _slug(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return cleaned[:40] or "search"
