"""Per-core file locks on a node, so two searches never time on the same core at once.

Each CPU core has a lock file ``cpu-<core>.lock`` (each GPU ``gpu-<index>.lock``)
under ``lock_directory()``
(``$PARETONAS_LOCK_DIR``, default ``<tmp>/paretonas-core-locks``). A measurement
holds ``fcntl.flock`` on its cores' files while it compiles and times; the kernel
frees a lock when its holder exits, so a crashed holder never leaves a stale one.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from hardware_pool.errors import CoreBusyError

LOCK_DIR_ENV = "PARETONAS_LOCK_DIR"


def lock_directory() -> Path:
    """Where this node's core lock files live (shared by every paretonas process here)."""
    configured = os.environ.get(LOCK_DIR_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "paretonas-core-locks"


def hold_cores(
    cores: Sequence[int], *, timeout_s: float, holder: str = "", directory: Path | None = None,
    poll_s: float = 0.05,
) -> AbstractContextManager[None]:
    """Hold every core's lock (taken in ascending order) for the ``with`` block.

    Waits up to ``timeout_s`` for cores another process holds, then raises
    ``CoreBusyError`` naming that process. ``holder`` describes us to whoever waits.
    """
    return hold_devices([f"cpu-{core}" for core in sorted(set(cores))], timeout_s=timeout_s,
                        holder=holder, directory=directory, poll_s=poll_s)


@contextmanager
def hold_devices(
    names: Sequence[str], *, timeout_s: float, holder: str = "", directory: Path | None = None,
    poll_s: float = 0.05,
) -> Iterator[None]:
    """Hold the locks ``<name>.lock`` (``cpu-3``, ``gpu-0``), in the order given."""
    directory = directory or lock_directory()
    directory.mkdir(parents=True, exist_ok=True)
    files: list[int] = []
    deadline = time.monotonic() + timeout_s
    try:
        for name in names:
            path = directory / f"{name}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            files.append(fd)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        what = name.replace("cpu-", "core ").replace("gpu-", "GPU ")
                        raise CoreBusyError(
                            f"{what} is busy: {_holder(path)} has held it for over "
                            f"{timeout_s:.0f} s ({path}); wait for that search to finish, stop "
                            f"it, or give this target other cores"
                        ) from None
                    time.sleep(poll_s)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} {holder}".strip().encode(), 0)
        yield
    finally:
        for fd in reversed(files):
            os.close(fd)  # closing the descriptor releases its flock


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return f"process {text}" if text else "another process"
