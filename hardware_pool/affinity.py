"""Process-wide CPU pinning: every thread of this process, not only the caller."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

_TASKS = "/proc/self/task"


def thread_ids() -> list[int]:
    """Ids of this process's threads (Linux ``/proc/self/task``)."""
    return sorted(int(name) for name in os.listdir(_TASKS))


def pin_process(cores: Iterable[int]) -> tuple[int, ...]:
    """Restrict every thread of this process to ``cores``; return them sorted.

    Threads started later inherit the mask of the thread that starts them, so
    after this call new threads stay on ``cores`` unless a runtime sets its own
    affinity; call again after such a runtime starts its threads. Repeats until
    no new thread appeared while pinning.
    """
    wanted = tuple(sorted(set(cores)))
    if not wanted:
        raise ValueError("pin_process needs at least one core")
    done: set[int] = set()
    for _ in range(10):
        todo = [tid for tid in thread_ids() if tid not in done]
        if not todo:
            break
        for tid in todo:
            with contextlib.suppress(ProcessLookupError):  # the thread ended meanwhile
                os.sched_setaffinity(tid, wanted)
            done.add(tid)
    return wanted


def thread_affinities() -> dict[int, list[int]]:
    """Thread id -> the cores it may run on, for every live thread of this process."""
    affinities: dict[int, list[int]] = {}
    for tid in thread_ids():
        try:
            affinities[tid] = sorted(os.sched_getaffinity(tid))
        except ProcessLookupError:  # the thread ended meanwhile
            continue
    return affinities


def process_cores() -> list[int]:
    """The union of every thread's cores: what this process may run on, all threads told."""
    return sorted({core for cores in thread_affinities().values() for core in cores})
