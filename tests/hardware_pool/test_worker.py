"""The Ray-free device worker: provenance, reference drift, the one-at-a-time guard."""

from __future__ import annotations

import pytest

from evaluators.timing import TimingSettings
from hardware_pool import Target
from hardware_pool.reference import REFERENCE_NAME, reference_request
from hardware_pool.worker import DeviceWorker

TIMING = TimingSettings(warmup_runs=1, min_runs=5, min_seconds=0.0)


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


def test_the_reference_model_is_fixed() -> None:
    assert reference_request().candidate == REFERENCE_NAME
    assert reference_request().sample_shape == (256,)
