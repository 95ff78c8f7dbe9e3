"""The pool with real Ray actors, real ONNX Runtime and OpenVINO on CPU.

One Ray session and one shared pool serve most tests (starting actors is the slow
part): ``ort`` and ``ov`` pin the last core, one as ``-1`` and one by number, so
they share one actor; ``testing`` (a plugin backend, see ``plugin_backends``) is
unpinned and can be told to hang.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import ray
import torch
import yaml
from torch import nn

from evaluators.backends.torch_backend import save_torch_program
from evaluators.errors import CompileError
from evaluators.export import export_onnx
from evaluators.timing import TimingSettings
from hardware_pool import Target, TargetUnavailableError
from hardware_pool.affinity import thread_affinities
from hardware_pool.errors import MeasurementTimeoutError
from hardware_pool.pool import HardwarePool
from hardware_pool.worker import MeasureRequest
from tests.conftest import TINY_CONFIG
from tests.hardware_pool.plugin_backends import interval_log

pytestmark = pytest.mark.slow

TIMING = TimingSettings(warmup_runs=2, min_runs=5, min_seconds=0.0, max_seconds=0.0)
LAST = sorted(os.sched_getaffinity(0))[-1]
PLUGINS = ("tests.hardware_pool.plugin_backends",)
TIMEOUT_S = 6.0


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """Ray with more logical CPUs than cores: actors reserve a CPU each."""
    ray.init(num_cpus=6, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def onnx_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    export_onnx(model, example_input=torch.randn(1, 1, 8, 8), path=path, candidate="linear")
    return path.read_bytes()


def _request(name: str, onnx_bytes: bytes) -> MeasureRequest:
    return MeasureRequest(name, onnx_bytes, (1, 8, 8))


@pytest.fixture(scope="module")
def pool(ray_session: None) -> Iterator[HardwarePool]:
    targets = [Target(name="ort", backend="onnxruntime", cores=(-1,)),
               Target(name="ov", backend="openvino", cores=(LAST,), batch_size=2),
               Target(name="testing", backend="testing")]
    with HardwarePool(targets, timing=TIMING, measure_timeout_s=TIMEOUT_S,
                      plugins=PLUGINS) as started:
        yield started


def test_one_core_by_any_name_is_one_actor_pinned_process_wide(
    pool: HardwarePool, onnx_bytes: bytes,
) -> None:
    pinned = [d for d in pool.describe() if d["pinned"]]
    assert len(pinned) == 1 and pinned[0]["targets"] == ["ort", "ov"]  # [-1] is core LAST
    assert pool.reserved_cores() == {ray.get_runtime_context().get_node_id(): [LAST]}
    results = pool.client().measure_all(_request("linear", onnx_bytes))
    assert set(results) == {"ort", "ov", "testing"}
    assert results["ov"].backend == "openvino" and results["ov"].batch_size == 2
    for measurement in results.values():
        assert 0 < measurement.min_ms <= measurement.median_ms <= measurement.p90_ms
        assert measurement.runs >= TIMING.min_runs
        assert measurement.provenance is not None
    provenance = results["ov"].provenance
    assert provenance is not None and provenance.cores == (LAST,)
    assert provenance.runtime_version.startswith("openvino ") and provenance.device_name
    # every thread, including those the runtimes started while measuring, stays on LAST
    threads = next(d for d in pool.describe() if d["pinned"])["threads"]
    assert isinstance(threads, dict) and len(threads) > 1
    assert {tid: cores for tid, cores in threads.items() if cores != [LAST]} == {}
    # measured once: a second request for the same candidate comes from the cache
    again = pool.client().measure_all(_request("linear", onnx_bytes))
    assert again["ov"].provenance == provenance


def test_trial_process_keeps_off_the_measurement_cores(pool: HardwarePool) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 cores: one to measure on, one for the trial")

    @ray.remote(num_cpus=0)
    class Trial:
        def run(self, reserved: dict[str, list[int]]) -> dict[int, list[int]]:
            from orchestrator.candidate import pin_away_from

            pin_away_from(reserved, ray.get_runtime_context().get_node_id())
            started = threading.Event()
            worker = threading.Thread(target=lambda: (started.set(), time.sleep(1)))
            worker.start()
            started.wait()
            torch.ones(1000) @ torch.ones(1000)  # let torch start its threads too
            affinities = thread_affinities()
            worker.join()
            return affinities

    trial = Trial.remote()  # type: ignore[attr-defined]
    affinities = ray.get(trial.run.remote(pool.reserved_cores()))
    ray.kill(trial)
    assert len(affinities) > 1
    assert {tid: cores for tid, cores in affinities.items() if LAST in cores} == {}


def test_compile_failure_names_target_and_backend(pool: HardwarePool) -> None:
    with pytest.raises(CompileError, match="target 'ort'.*onnxruntime"):
        pool.client().measure("ort", MeasureRequest("junk", b"not an onnx model", (1, 8, 8)))


def test_a_hung_measurement_fails_in_time_and_frees_the_device(
    pool: HardwarePool, onnx_bytes: bytes,
) -> None:
    client = pool.client()
    before = client.measure("testing", _request("before-hang", onnx_bytes))
    started = time.monotonic()
    with pytest.raises(MeasurementTimeoutError, match="target 'testing': measuring hang-1 hung"):
        client.measure("testing", _request("hang-1", onnx_bytes))
    assert time.monotonic() - started < TIMEOUT_S + 60  # not forever (the backend sleeps 1 h)
    after = client.measure("testing", _request("after-hang", onnx_bytes))
    assert after.runs >= TIMING.min_runs
    assert before.provenance and after.provenance
    assert after.provenance.node == before.provenance.node  # the same device, restarted


def test_killing_the_actor_mid_stream_loses_no_candidate(
    pool: HardwarePool, onnx_bytes: bytes,
) -> None:
    client = pool.client()
    slow = TimingSettings(warmup_runs=1, min_runs=5, min_seconds=0.4, max_runs=10**6)
    names = [f"stream-{index}" for index in range(6)]
    done: list[str] = []

    def measure(name: str) -> float:
        measured = client.measure("testing", _request(name, onnx_bytes), timing=slow)
        done.append(name)
        return measured.median_ms

    with ThreadPoolExecutor(2) as executor:
        futures = [executor.submit(measure, name) for name in names]
        while not done:
            time.sleep(0.05)
        time.sleep(0.2)  # into the next measurement
        ray.kill(client.actors["testing"], no_restart=False)  # the runtime crashed
        medians = [future.result() for future in futures]
    assert len(medians) == len(names) and all(m > 0 for m in medians)


def test_confirm_retimes_in_interleaved_rounds(pool: HardwarePool, onnx_bytes: bytes) -> None:
    requests = [_request("confirm-a", onnx_bytes), _request("confirm-b", onnx_bytes)]
    confirmed = pool.client().confirm(requests, timing=TIMING, rounds=2, targets=["ort"])
    assert set(confirmed) == {"confirm-a", "confirm-b"}
    for per_target in confirmed.values():
        assert per_target["ort"].runs >= 2 * TIMING.min_runs


def test_unavailable_cores_fail_at_start(ray_session: None) -> None:
    with pytest.raises(TargetUnavailableError, match="target 'x'.*not available on this node"):
        HardwarePool([Target(name="x", backend="onnxruntime", cores=(4096,))],
                     timing=TIMING).start()


def test_unknown_backend_fails_at_start(ray_session: None) -> None:
    with pytest.raises(TargetUnavailableError, match="unknown backend 'no-such-runtime'"):
        HardwarePool([Target(name="t", backend="no-such-runtime")], timing=TIMING).start()


def test_pool_refuses_duplicate_names() -> None:
    with pytest.raises(TargetUnavailableError, match="unique"):
        HardwarePool([Target(name="a", backend="x"), Target(name="a", backend="y")], timing=TIMING)


def test_two_pools_on_one_core_take_turns(ray_session: None, onnx_bytes: bytes) -> None:
    """Two searches on one machine, both pinned to the last core: the core lock
    makes their measurements (compile to close) follow one another."""
    token = uuid.uuid4().hex[:12]
    timing = TimingSettings(warmup_runs=1, min_runs=5, min_seconds=0.5, max_runs=10**6)
    target = Target(name="t", backend="testing", cores=(-1,))
    pools = [HardwarePool([target], timing=timing, plugins=PLUGINS).start() for _ in range(2)]
    try:
        clients = [p.client() for p in pools]
        with ThreadPoolExecutor(4) as executor:
            futures = [executor.submit(client.measure, "t",
                                       _request(f"record-{token}-{index}", onnx_bytes))
                       for index in range(2) for client in clients]
            for future in futures:
                future.result()
    finally:
        for started in pools:
            started.shutdown()
    log = interval_log(token)
    lines = [line.split() for line in log.read_text().splitlines()]
    log.unlink()
    assert len(lines) == 4 and len({pid for _, _, pid in lines}) == 2  # two actors, one core
    intervals = sorted((float(start), float(end)) for start, end, _ in lines)
    for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
        assert end <= start, f"measurements overlapped: {intervals}"


def test_measure_command_times_onnx_files_on_the_config_targets(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from orchestrator.cli import main

    models = [tmp_path / "a.onnx", tmp_path / "b.onnx"]
    module = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    for model in models:  # each with its PyTorch program beside it, for the torch target
        export_onnx(module, example_input=torch.randn(1, 1, 8, 8), path=model, candidate="m")
        save_torch_program(module, example_input=torch.randn(1, 1, 8, 8), onnx_path=model)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**TINY_CONFIG, "targets": [
        {"name": "cpu-ort", "backend": "onnxruntime", "cores": [-1]},
        {"name": "cpu-torch", "backend": "torch-eager", "cores": [-1]}]}))
    assert main(["measure", *map(str, models), "--config", str(config), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["model"], row["target"]) for row in rows] == [
        (str(models[0]), "cpu-ort"), (str(models[0]), "cpu-torch"),
        (str(models[1]), "cpu-ort"), (str(models[1]), "cpu-torch")]
    assert all(row["median_ms"] > 0 and row["provenance"]["cores"] == [LAST] for row in rows)
    assert main(["measure", str(tmp_path / "missing.onnx"), "--config", str(config)]) == 2
    assert "cannot read" in capsys.readouterr().err
