from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from evaluators import BackendOptions, get_backend
from evaluators.reference import (
    REFERENCE_INPUT_SHAPE,
    reference_model_bytes,
    write_reference_model,
)


def test_reference_model_bytes_are_fixed(tmp_path: Path) -> None:
    first = write_reference_model(tmp_path / "a" / "reference.onnx").read_bytes()
    assert first == reference_model_bytes() == write_reference_model(tmp_path / "b.onnx").read_bytes()
    assert len(first) > 10_000
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(reference_model_bytes()).hexdigest()


@pytest.mark.slow
def test_reference_model_runs_alike_on_both_runtimes(tmp_path: Path) -> None:
    path = write_reference_model(tmp_path / "reference.onnx")
    inputs = np.random.default_rng(0).standard_normal(REFERENCE_INPUT_SHAPE, dtype=np.float32)
    outputs = []
    for name in ("onnxruntime", "openvino"):
        compiled = get_backend(name).compile(path, options=BackendOptions(),
                                             input_shape=REFERENCE_INPUT_SHAPE)
        try:
            outputs.append(compiled.run(inputs))
        finally:
            compiled.close()
    assert outputs[0].shape == (1, 10) and np.all(np.isfinite(outputs[0]))
    assert np.std(outputs[0]) > 1e-3  # not a degenerate constant
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)
