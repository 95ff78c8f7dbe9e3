"""Per-core locks: a second holder waits, then names the first one."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from hardware_pool.core_lock import hold_cores, hold_devices, lock_directory
from hardware_pool.errors import CoreBusyError


def test_a_held_core_makes_the_next_holder_wait_then_fail_naming_it(tmp_path: Path) -> None:
    with (hold_cores([3, 1], timeout_s=1, holder="search A", directory=tmp_path),
          pytest.raises(CoreBusyError, match=rf"core 1 is busy: process pid {os.getpid()} "
                                             r"search A has held it"),
          hold_cores([1], timeout_s=0.2, directory=tmp_path)):
        pass
    with hold_cores([1, 3], timeout_s=0.2, directory=tmp_path):  # released on exit
        pass


def test_the_waiter_gets_the_core_once_it_is_freed(tmp_path: Path) -> None:
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with hold_cores([0], timeout_s=1, directory=tmp_path):
            held.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    with hold_cores([0], timeout_s=10, directory=tmp_path):
        order.append("second got it")
    thread.join()
    assert order == ["first done", "second got it"]


def test_disjoint_cores_do_not_wait(tmp_path: Path) -> None:
    with (hold_cores([0], timeout_s=0.1, directory=tmp_path),
          hold_cores([1], timeout_s=0.1, directory=tmp_path)):
        pass


def test_the_lock_directory_is_configurable(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("PARETONAS_LOCK_DIR", str(tmp_path))
    assert lock_directory() == tmp_path


def test_a_gpu_lock_names_the_gpu(tmp_path: Path) -> None:
    with (hold_devices(["gpu-0"], timeout_s=1, directory=tmp_path),
          pytest.raises(CoreBusyError, match="GPU 0 is busy"),
          hold_devices(["gpu-0"], timeout_s=0.1, directory=tmp_path)):
        pass
