"""Targets are data; core specs resolve on the node."""

from __future__ import annotations

import os

import pytest

from hardware_pool import Target, TargetUnavailableError
from hardware_pool.target import group_by_device, resolve_cores


def _names(groups: dict[str, list[Target]]) -> dict[str, list[str]]:
    return {key: [t.name for t in targets] for key, targets in groups.items()}


def test_targets_sharing_cores_share_a_device() -> None:
    targets = [
        Target(name="ort", backend="onnxruntime", cores=(1,)),
        Target(name="ov", backend="openvino", cores=(1,)),
        Target(name="other", backend="openvino", cores=(0,)),
        Target(name="wide", backend="onnxruntime", cores=(2, 3)),
        Target(name="bridge", backend="onnxruntime", cores=(1, 2)),  # joins {1} and {2, 3}
        Target(name="free", backend="onnxruntime"),
        Target(name="free2", backend="openvino"),
        Target(name="gpu", backend="tensorrt", device="cuda:0"),
        Target(name="gpu-ep", backend="onnxruntime", device="tensorrt"),
    ]
    assert _names(group_by_device(targets)) == {
        "cpu:0": ["other"],
        "cpu:1,2,3": ["ort", "ov", "wide", "bridge"],
        "cpu": ["free", "free2"],
        "gpu:0": ["gpu", "gpu-ep"],
    }


def test_cores_are_either_counted_from_the_start_or_from_the_end() -> None:
    with pytest.raises(TargetUnavailableError, match="all >= 0 or all negative"):
        Target(name="x", backend="onnxruntime", cores=(0, -1))


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


def test_cores_resolved_on_the_node_merge_minus_one_with_its_number() -> None:
    targets = [Target(name="a", backend="onnxruntime", cores=(-1,)),
               Target(name="b", backend="openvino", cores=(3,))]
    assert len(group_by_device(targets)) == 2  # as written they differ
    resolved = {t.name: resolve_cores(t.cores or (), available=[0, 1, 2, 3]) for t in targets}
    assert _names(group_by_device(targets, cores=resolved)) == {"cpu:3": ["a", "b"]}


def test_device_kind_and_index() -> None:
    target = Target(name="g", backend="onnxruntime", device="cuda:1")
    assert (target.device_kind, target.device_index) == ("cuda", 1)
    assert Target(name="c", backend="x").device_index is None
