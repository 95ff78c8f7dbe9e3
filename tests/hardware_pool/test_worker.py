"""The Ray-free device worker: provenance, reference drift, the one-at-a-time guard."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from evaluators.export import export_onnx
from evaluators.timing import TimingSettings
from hardware_pool import Target
from hardware_pool.reference import REFERENCE_NAME, reference_request
from hardware_pool.worker import DeviceWorker, MeasureRequest
from search_spaces.errors import ParetonasError

TIMING = TimingSettings(warmup_runs=1, min_runs=5, min_seconds=0.0, max_seconds=0.0)


@pytest.fixture(scope="module")
def worker() -> DeviceWorker:
    return DeviceWorker([Target(name="ort", backend="onnxruntime")], timing=TIMING,
                        device_name="test cpu", reference_every=2, reference_tolerance=0.5)


def test_measurements_say_where_and_with_what(worker: DeviceWorker) -> None:
    measured = worker.measure("ort", reference_request())
    provenance = measured.provenance
    assert provenance is not None
    assert provenance.device_name == "test cpu" and provenance.threads == 1
    assert provenance.runtime_version.startswith("onnxruntime ")
    assert measured.runs >= TIMING.min_runs and provenance.drift == ""
    assert worker.activity().phase == "idle" and worker.activity().served >= 2  # + reference


def test_a_drifting_reference_flags_and_remeasures(worker: DeviceWorker) -> None:
    worker._baseline["ort"] = 1e-6  # as if the device had been far faster at the start
    worker.measure("ort", reference_request())  # the 2nd measurement re-times the reference
    flagged = worker.measure("ort", reference_request())  # 3rd: not due
    assert flagged.provenance is not None and flagged.provenance.drift == ""
    drifted = worker.measure("ort", reference_request())  # 4th: due, and drifted
    assert drifted.provenance is not None
    assert drifted.provenance.drift.startswith("reference model ")
    assert "re-measured" in drifted.provenance.drift


def test_many_requests_are_timed_round_robin_in_one_go(worker: DeviceWorker) -> None:
    requests = [replace(reference_request(), candidate=name) for name in ("a", "b", "c")]
    served = worker.activity().served
    measured = worker.measure_many(["ort"], requests, timing=replace(TIMING, min_seconds=0.05,
                                                                 round_seconds=0.01))
    assert list(measured) == ["ort"] and worker.activity().served == served + 1  # one request
    assert len(measured["ort"]) == 3
    for measurement in measured["ort"]:
        assert measurement.provenance is not None and measurement.runs >= TIMING.min_runs
        assert measurement.rounds >= 2
    broken = replace(reference_request(), candidate="broken", onnx_model=b"not onnx")
    with pytest.raises(ParetonasError, match="^onnxruntime: .*broken.onnx"):
        worker.measure_many(["ort"], [requests[0], broken])
    assert worker.activity().phase == "idle"


def test_targets_sharing_a_device_are_timed_round_robin_together() -> None:
    both = DeviceWorker([Target(name="ort", backend="onnxruntime"),
                         Target(name="ov", backend="openvino")], timing=TIMING)
    requests = [replace(reference_request(), candidate=name) for name in ("a", "b")]
    measured = both.measure_many(["ov", "ort"], requests)
    assert list(measured) == ["ov", "ort"]
    assert [m.backend for m in measured["ov"]] == ["openvino"] * 2
    assert [m.backend for m in measured["ort"]] == ["onnxruntime"] * 2
    assert both.activity().served == 1


def test_the_reference_model_is_fixed() -> None:
    assert reference_request().candidate == REFERENCE_NAME
    assert reference_request().sample_shape == (3, 32, 32)


@pytest.mark.slow
def test_int8_targets_calibrate_and_report_accuracy_from_the_named_dataset(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.onnx"
    export_onnx(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval(),
                example_input=torch.randn(1, 1, 8, 8), path=path, candidate="linear")
    worker = DeviceWorker([Target(name="int8", backend="onnxruntime", precision="int8"),
                           Target(name="fp32", backend="onnxruntime")], timing=TIMING)
    request = MeasureRequest("linear", path.read_bytes(), (1, 8, 8), dataset="digits", seed=0)
    int8 = worker.measure("int8", request)
    assert int8.precision == "int8" and int8.accuracy is not None and 0 <= int8.accuracy <= 1
    assert worker.measure("fp32", request).accuracy is None  # not asked for
    evaluated = worker.measure("fp32", replace(request, evaluate=True))
    assert evaluated.accuracy is not None
