"""A real ``ray start --head`` for tests: free ports, dashboard on 127.0.0.1, stopped by its own pid.

Never ``ray stop``: that would stop every Ray on the machine. The head runs with
``--block`` in its own session; stopping it signals that process, then ends whatever
is left of its session.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from hardware_pool.discovery import probe_node
from tests.conftest import ROOT

PORT_FLAGS = ("port", "dashboard-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
              "node-manager-port", "object-manager-port", "runtime-env-agent-port",
              "metrics-export-port", "ray-client-server-port")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalHead:
    """One Ray head node on this machine with ``num_cpus`` CPUs."""

    def __init__(self, *, num_cpus: int = 2, start_timeout_s: float = 120.0) -> None:
        self.ports = {flag: free_port() for flag in PORT_FLAGS}
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))  # short: socket paths
        self.log = self.temp_dir / "ray-start.log"
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
        env.pop("RAY_ADDRESS", None)
        resources = json.dumps(probe_node().ray_resources())  # what `paretonas targets` says
        command = [str(bin_dir / "ray"), "start", "--head", "--block", f"--num-cpus={num_cpus}",
                   f"--resources={resources}",
                   "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                   f"--temp-dir={self.temp_dir}", "--disable-usage-stats",
                   *(f"--{flag}={port}" for flag, port in self.ports.items())]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, cwd=self.temp_dir)
        self.dashboard = f"http://127.0.0.1:{self.ports['dashboard-port']}"
        self.gcs = f"127.0.0.1:{self.ports['port']}"
        try:
            self._wait_until_up(start_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_until_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.dashboard}/api/version", timeout=2).close()
                return
            except urllib.error.HTTPError as error:  # 401: up, with token authentication
                if error.code == 401:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the Ray head did not start in {timeout_s:.0f} s: "
                           f"{self.log.read_text()[-3000:]}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop this head (and only it): its ``ray start`` process, then its session's leftovers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout_s)
        for pid in session_members(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def session_members(session_id: int) -> list[int]:
    """Processes whose session is ``session_id`` (the head's, started with a new session)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # fields after "(comm)": state ppid pgrp session
            members.append(int(entry.name))
    return members
