"""Targets are data; core specs resolve on the node."""

from __future__ import annotations

import os

import pytest

from hardware_pool import Target, TargetUnavailableError
from hardware_pool.target import resolve_cores


def test_device_key_groups_targets_on_the_same_cores() -> None:
    ort = Target(name="a", backend="onnxruntime", cores=(1,))
    ov = Target(name="b", backend="openvino", cores=(1,))
    other = Target(name="c", backend="openvino", cores=(0,))
    assert ort.device_key == ov.device_key == "cpu-1"
    assert other.device_key != ort.device_key
    assert Target(name="g", backend="tensorrt", device="cuda:0").device_key == "cuda:0"


def test_num_cpus_follows_cores_or_threads() -> None:
    assert Target(name="a", backend="x", cores=(0, 1, 1)).num_cpus == 2
    assert Target(name="a", backend="x", threads=3).num_cpus == 3


def test_negative_cores_count_from_the_last() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    assert resolve_cores((-1,)) == (allowed[-1],)
    assert resolve_cores((allowed[0], -1)) == tuple(sorted({allowed[0], allowed[-1]}))


def test_missing_cores_are_refused_with_what_exists() -> None:
    with pytest.raises(TargetUnavailableError, match="not available on this node"):
        resolve_cores((10_000,))
    with pytest.raises(TargetUnavailableError, match="does not exist"):
        resolve_cores((-10_000,))
