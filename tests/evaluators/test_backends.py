"""Contract tests every registered backend must pass, then backend specifics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from evaluators import (
    BACKENDS,
    Backend,
    BackendOptions,
    CompiledModel,
    CompileError,
    SettingsError,
    get_backend,
)
from search_spaces import UnknownNameError
from tests.evaluators.models import SAMPLE_SHAPE, torch_logits

pytestmark = pytest.mark.slow


#: Inductor's C++ build takes minutes per model on a 2-core machine; torch-compile runs
#: the same program as torch-eager and is exercised by benchmarks/pool_fidelity.py.
SLOW_TO_COMPILE = {"torch-compile"}


@pytest.fixture(params=[
    pytest.param(name, marks=pytest.mark.skip(reason=f"{name}: compiling takes minutes here"))
    if name in SLOW_TO_COMPILE else name
    for name in BACKENDS.names()
])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each registered backend, skipped with its own reason where it cannot run here."""
    backend = get_backend(request.param)
    reason = backend.availability(BackendOptions(device=backend.devices[0]))
    if reason:
        pytest.skip(reason)
    return backend


def test_backend_declares_its_name_devices_and_precisions(backend: Backend) -> None:
    assert backend.name in BACKENDS and get_backend(backend.name) is backend
    assert backend.devices and backend.precisions and "fp32" in backend.precisions


def test_compiled_model_matches_torch(backend: Backend, tiny_model: nn.Module,
                                      tiny_onnx: Path) -> None:
    options = BackendOptions(device=backend.devices[0], threads=1)
    inputs = np.random.default_rng(0).standard_normal((3, *SAMPLE_SHAPE), dtype=np.float32)
    compiled = backend.compile(tiny_onnx, options=options, input_shape=inputs.shape)
    try:
        assert isinstance(compiled, CompiledModel)
        first = compiled.run(inputs)
        compiled.synchronize()
        second = compiled.run(inputs)
    finally:
        compiled.close()
    assert isinstance(first, np.ndarray) and first.shape == (3, 10)
    np.testing.assert_allclose(first, torch_logits(tiny_model, inputs), rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(first, second)  # results are not overwritten by later runs


@pytest.mark.parametrize("batch", [1, 3])
def test_prepared_run_equals_run(backend: Backend, tiny_onnx: Path, batch: int) -> None:
    """The timed path (inputs and outputs bound once) computes what ``run`` computes."""
    options = BackendOptions(device=backend.devices[0], threads=1)
    rng = np.random.default_rng(batch)
    inputs = rng.standard_normal((batch, *SAMPLE_SHAPE), dtype=np.float32)
    compiled = backend.compile(tiny_onnx, options=options, input_shape=inputs.shape)
    try:
        expected = compiled.run(inputs)
        compiled.prepare(inputs)
        for _ in range(3):
            compiled.run_prepared()
        compiled.synchronize()
        prepared = compiled.prepared_output()
        again = compiled.run(inputs)
        compiled.run(np.zeros_like(inputs))  # a plain run must not disturb the binding
        after_run = compiled.prepared_output()
    finally:
        compiled.close()
    assert prepared.shape == expected.shape == (batch, 10)
    np.testing.assert_allclose(prepared, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(again, expected)
    np.testing.assert_allclose(after_run, expected, rtol=1e-5, atol=1e-6)


def test_corrupt_onnx_is_a_compile_error_naming_the_backend(backend: Backend,
                                                            corrupt_onnx: Path) -> None:
    with pytest.raises(CompileError, match=f"^{backend.name}"):
        backend.compile(corrupt_onnx, options=BackendOptions(device=backend.devices[0]))


def test_unsupported_options_give_reasons_naming_supported_ones(backend: Backend,
                                                                tiny_onnx: Path) -> None:
    bad_device = BackendOptions(device="abacus")
    reason = backend.availability(bad_device)
    assert reason and "abacus" in reason and backend.devices[0] in reason
    bad_precision = BackendOptions(device=backend.devices[0], precision="int3")
    reason = backend.availability(bad_precision)
    assert reason and "int3" in reason and "fp32" in reason
    with pytest.raises(CompileError, match="int3"):
        backend.compile(tiny_onnx, options=bad_precision)


def test_unknown_backend_lists_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="known: .*onnxruntime, openvino"):
        get_backend("tensorflow-lite")


@pytest.mark.parametrize(("field", "value"), [("threads", 0), ("device", ""), ("precision", 16)])
def test_bad_backend_options_name_the_field(field: str, value: object) -> None:
    with pytest.raises(SettingsError, match=rf"BackendOptions\.{field}"):
        BackendOptions(**{field: value})


def test_onnxruntime_keeps_the_batch_dynamic(tiny_onnx: Path) -> None:
    compiled = get_backend("onnxruntime").compile(tiny_onnx, options=BackendOptions())
    for batch in (1, 4):
        assert compiled.run(np.zeros((batch, *SAMPLE_SHAPE), np.float32)).shape == (batch, 10)


def test_onnxruntime_cuda_needs_the_cuda_provider() -> None:
    reason = get_backend("onnxruntime").availability(BackendOptions(device="cuda"))
    if reason is None:
        pytest.skip("CUDAExecutionProvider is available here")
    assert "CUDAExecutionProvider" in reason


def test_openvino_fixes_the_batch_at_compile_time(tiny_onnx: Path) -> None:
    compiled = get_backend("openvino").compile(tiny_onnx, options=BackendOptions(),
                                               input_shape=(2, *SAMPLE_SHAPE))
    assert compiled.run(np.zeros((2, *SAMPLE_SHAPE), np.float32)).shape == (2, 10)
    with pytest.raises(RuntimeError):
        compiled.run(np.zeros((5, *SAMPLE_SHAPE), np.float32))


_SIGTERM_AFTER_OPENVINO = """
import os, signal, sys, time
from evaluators import BackendOptions, MeasureJob, TimingSettings, measure_many
job = MeasureJob(backend="openvino", options=BackendOptions(), input_shape=(1, 1, 8, 8))
measure_many([(sys.argv[1], [job])] * 2, timing=TimingSettings(
    warmup_runs=1, min_runs=5, min_seconds=0.01, round_seconds=0.002))
received = []
signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(0.1)
print("handled", received)
"""


def test_openvino_models_leave_signal_handling_intact(tiny_onnx: Path) -> None:
    """Two models compiled and timed together, then a SIGTERM handled in Python (as Ray
    and Tune send it): one shared Core, else the CPU plugins leave the thread on a freed
    signal stack and the process dies with SIGSEGV."""
    done = subprocess.run([sys.executable, "-c", _SIGTERM_AFTER_OPENVINO, str(tiny_onnx)],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "handled [15]" in done.stdout


def test_openvino_missing_device_has_a_reason() -> None:
    reason = get_backend("openvino").availability(BackendOptions(device="npu"))
    if reason is None:
        pytest.skip("this machine has an NPU")
    assert "NPU" in reason and "available" in reason


@pytest.mark.parametrize("name", ["torch-eager", "torch-compile"])
def test_torch_backend_without_its_program_says_how_to_write_it(name: str, tiny_onnx: Path,
                                                               tmp_path: Path) -> None:
    alone = tmp_path / "alone.onnx"
    alone.write_bytes(tiny_onnx.read_bytes())
    with pytest.raises(CompileError, match=rf"^{name}: needs the PyTorch program .*alone\.pt2.*"
                                           r"save_torch_program"):
        get_backend(name).compile(alone, options=BackendOptions())
