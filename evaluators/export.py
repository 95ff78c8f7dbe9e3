"""Export a trained candidate to one checked, numerically verified ONNX file."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from evaluators.errors import ExportError

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
_RTOL, _ATOL = 1e-3, 1e-4


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (trainable or not) in ``model``."""
    return sum(parameter.numel() for parameter in model.parameters())


def export_onnx(
    model: nn.Module, *, example_input: torch.Tensor, path: Path, candidate: str, opset: int = 17
) -> Path:
    """Write ``model`` (put in eval mode) to ``path`` as ONNX with a dynamic batch axis.

    Uses the TorchScript exporter (``dynamo=False``): about 100× faster than the
    ``torch.export`` path for small nets and it honours ``opset``. The file is checked
    with ``onnx.checker`` and run in ONNX Runtime on a batch of 2, which must match
    torch within rtol=1e-3, atol=1e-4; only then does it replace ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    model.eval()
    try:
        try:
            with _quiet():
                torch.onnx.export(
                    model, (example_input,), str(partial), input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME], opset_version=opset, dynamo=False,
                    dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                )
        except Exception as error:
            raise _failure(candidate, "torch.onnx.export failed", error) from error
        _check(partial, model, example_input, candidate)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _check(path: Path, model: nn.Module, example_input: torch.Tensor, candidate: str) -> None:
    """Raise ``ExportError`` unless ``path`` is valid ONNX that reproduces ``model``."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:
        raise _failure(candidate, "onnx.checker rejected the export", error) from error
    sample = torch.randn(2, *example_input.shape[1:], generator=torch.Generator().manual_seed(0),
                         dtype=example_input.dtype)
    try:
        with torch.no_grad():
            expected = model(sample.to(example_input.device)).cpu().numpy()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])
        actual = session.run([OUTPUT_NAME], {INPUT_NAME: sample.numpy()})[0]
    except Exception as error:
        raise _failure(candidate, "running the export at batch 2 failed", error) from error
    if actual.shape != expected.shape:
        raise ExportError(f"candidate {candidate}: ONNX Runtime output has shape "
                          f"{actual.shape} at batch 2, torch {expected.shape}")
    if not np.allclose(actual, expected, rtol=_RTOL, atol=_ATOL):
        raise ExportError(f"candidate {candidate}: ONNX Runtime output differs from torch at "
                          f"batch 2 by up to {np.abs(actual - expected).max():.3g}")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence exporter warnings and the graph dump torch writes to fd 1 on failure."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as devnull, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _failure(candidate: str, what: str, error: BaseException) -> ExportError:
    """``ExportError("candidate <candidate>: <what>: <first line of the cause>")``."""
    cause = (str(error).strip() or type(error).__name__).splitlines()[0]
    return ExportError(f"candidate {candidate}: {what}: {cause}")
