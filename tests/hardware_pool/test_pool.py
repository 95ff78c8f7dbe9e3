"""The pool with real Ray actors, real ONNX Runtime and OpenVINO on CPU."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import ray
import torch
from torch import nn

from evaluators.errors import CompileError
from evaluators.export import export_onnx
from evaluators.timing import TimingSettings
from hardware_pool import Target, TargetUnavailableError
from hardware_pool.pool import HardwarePool
from hardware_pool.worker import MeasureRequest
from search_spaces import UnknownNameError

pytestmark = pytest.mark.slow

TIMING = TimingSettings(warmup_runs=2, min_runs=5, min_seconds=0.0)
LAST = sorted(os.sched_getaffinity(0))[-1]


@pytest.fixture(scope="module")
def request_bytes(tmp_path_factory: pytest.TempPathFactory) -> MeasureRequest:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    export_onnx(model, example_input=torch.randn(1, 1, 8, 8), path=path, candidate="linear")
    return MeasureRequest("linear", path.read_bytes(), (1, 8, 8))


def test_targets_on_one_device_share_a_pinned_actor(ray_local: None,
                                                    request_bytes: MeasureRequest) -> None:
    targets = [Target(name="ort", backend="onnxruntime", cores=(-1,)),
               Target(name="ov", backend="openvino", cores=(-1,), batch_size=2)]
    with HardwarePool(targets, timing=TIMING) as pool:
        described = pool.describe()
        assert len(described) == 1  # one device -> one actor, so timings never overlap
        assert described[0]["cores"] == [LAST] and described[0]["targets"] == ["ort", "ov"]
        assert pool.reserved_cores() == {ray.get_runtime_context().get_node_id(): [LAST]}
        results = pool.client().measure_all(request_bytes)
    assert set(results) == {"ort", "ov"}
    assert results["ort"].backend == "onnxruntime" and results["ov"].backend == "openvino"
    assert results["ov"].batch_size == 2
    for measurement in results.values():
        assert 0 < measurement.min_ms <= measurement.median_ms <= measurement.p90_ms
        assert measurement.runs >= TIMING.min_runs


def test_compile_failure_names_target_and_backend(ray_local: None) -> None:
    with (HardwarePool([Target(name="ort", backend="onnxruntime")], timing=TIMING) as pool,
          pytest.raises(CompileError, match="target 'ort'")):
        pool.client().measure_all(MeasureRequest("junk", b"not an onnx model", (1, 8, 8)))


def test_unavailable_cores_fail_at_start(ray_local: None) -> None:
    with pytest.raises(TargetUnavailableError, match="actor failed to start.*not available"):
        HardwarePool([Target(name="x", backend="onnxruntime", cores=(4096,))],
                     timing=TIMING).start()


def test_a_dead_actor_fails_the_candidate_then_recovers(ray_local: None,
                                                        request_bytes: MeasureRequest) -> None:
    slow = TimingSettings(warmup_runs=2, min_runs=5, min_seconds=5.0, max_runs=10**9)
    with HardwarePool([Target(name="ort", backend="onnxruntime")], timing=slow) as pool:
        client = pool.client()
        with ThreadPoolExecutor(1) as executor:
            in_flight = executor.submit(client.measure_all, request_bytes)
            time.sleep(1.5)
            ray.kill(client.actors["ort"], no_restart=False)  # the runtime crashed mid-measurement
            with pytest.raises(TargetUnavailableError,
                               match="target 'ort': its measuring actor died"):
                in_flight.result()
        assert client.measure_all(request_bytes)["ort"].runs >= slow.min_runs  # restarted


def test_pool_refuses_duplicate_names() -> None:
    with pytest.raises(TargetUnavailableError, match="unique"):
        HardwarePool([Target(name="a", backend="x"), Target(name="a", backend="y")], timing=TIMING)


def test_unknown_backend_surfaces(ray_local: None, request_bytes: MeasureRequest) -> None:
    with (HardwarePool([Target(name="t", backend="no-such-runtime")], timing=TIMING) as pool,
          pytest.raises(UnknownNameError, match="unknown backend 'no-such-runtime'")):
        pool.client().measure_all(request_bytes)
