"""Targets are checked on the node before anything trains."""

from __future__ import annotations

import os

import pytest

from hardware_pool import Target, TargetUnavailableError
from hardware_pool.checks import check_targets, require_targets
from hardware_pool.discovery import cuda_gpus

CORES = sorted(os.sched_getaffinity(0))


def test_available_targets_pass() -> None:
    assert check_targets([Target(name="ort", backend="onnxruntime", cores=(-1,)),
                          Target(name="ov", backend="openvino")]) == []


def test_cores_that_do_not_exist_are_refused() -> None:
    if 99 in CORES:
        pytest.skip("this machine has a core 99")
    [problem] = check_targets([Target(name="far", backend="onnxruntime", cores=(99,))])
    assert problem.startswith("target 'far': cores [99]") and "not available" in problem


def test_every_problem_is_listed_once_per_line() -> None:
    problems = check_targets([
        Target(name="a", backend="no-such-runtime"),
        Target(name="b", backend="onnxruntime", precision="bf16"),
        Target(name="c", backend="openvino", device="npu"),
    ], cores=CORES)
    assert [p.split(":")[0] for p in problems] == ["target 'a'", "target 'b'", "target 'c'"]
    assert "unknown backend 'no-such-runtime'; known:" in problems[0]
    assert "does not support precision 'bf16'" in problems[1]
    assert "openvino cannot run npu/fp32 here" in problems[2]
    with pytest.raises(TargetUnavailableError, match=r"(?s)target 'a'.*target 'b'.*target 'c'"):
        require_targets([Target(name="a", backend="no-such-runtime"),
                         Target(name="b", backend="onnxruntime", precision="bf16"),
                         Target(name="c", backend="openvino", device="npu")])


def test_cuda_needs_a_gpu() -> None:
    if cuda_gpus():
        pytest.skip("this machine has a CUDA GPU")
    problems = check_targets([Target(name="gpu", backend="onnxruntime", device="cuda")])
    assert any("needs an NVIDIA GPU, and none is visible here" in p for p in problems)


def test_cores_are_checked_against_the_given_node() -> None:
    assert check_targets([Target(name="t", backend="onnxruntime", cores=(3,))],
                         cores=[0, 1, 2, 3]) == []
    [problem] = check_targets([Target(name="t", backend="onnxruntime", cores=(-5,))],
                              cores=[0, 1, 2, 3])
    assert "core -5 does not exist: this node has 4 available cores" in problem
