"""Pinning reaches every thread of the process."""

from __future__ import annotations

import os
import threading

import pytest

from hardware_pool.affinity import pin_process, process_cores, thread_affinities


def test_pin_process_pins_every_thread_and_new_ones_inherit() -> None:
    before = sorted(os.sched_getaffinity(0))
    stop = threading.Event()
    early = threading.Thread(target=stop.wait)
    early.start()
    try:
        pin_process([before[-1]])
        late = threading.Thread(target=stop.wait)
        late.start()
        affinities = thread_affinities()
        assert len(affinities) >= 3
        assert all(cores == [before[-1]] for cores in affinities.values())
        assert process_cores() == [before[-1]]
    finally:
        pin_process(before)
        stop.set()
    assert all(cores == before for cores in thread_affinities().values())


def test_pin_process_needs_a_core() -> None:
    with pytest.raises(ValueError, match="at least one core"):
        pin_process([])
