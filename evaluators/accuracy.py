"""Accuracy of a compiled model, run through its runtime: ``accuracy@<target>``.

A quantized (or fp16) model can lose accuracy that the trained torch model does not
show, so a target's own accuracy is measured on held-out samples through the compiled
model and reported as its own metric. A measuring process combines the pieces so::

    dataset = load_dataset(name, seed=seed)                  # cached per process
    options = with_calibration(BackendOptions(device=..., precision=..., threads=...),
                               dataset, seed=seed)           # int8: calibration samples
    measurement = measure_onnx(path, backend=..., options=options, input_shape=...,
                               timing=..., evaluation=EvaluationSet.from_dataset(dataset))
    measurement.as_metrics()["accuracy"]                     # -> accuracy@<target>
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.backends.base import CompiledModel
from evaluators.data import Dataset
from evaluators.errors import BenchmarkError, SettingsError


@dataclass(frozen=True, eq=False)
class EvaluationSet:
    """Held-out samples (float32, N × sample shape) and their int class labels."""

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if not (isinstance(self.x, np.ndarray) and isinstance(self.y, np.ndarray)):
            raise SettingsError("EvaluationSet.x and .y must be numpy arrays")
        if self.x.ndim < 2 or self.y.shape != (len(self.x),) or not len(self.x):
            raise SettingsError(f"EvaluationSet needs x of shape (N, ...) and y of shape (N,) "
                                f"with N > 0, got {self.x.shape} and {self.y.shape}")
        if not np.issubdtype(self.y.dtype, np.integer):
            raise SettingsError(f"EvaluationSet.y must hold integer labels, got {self.y.dtype}")

    @classmethod
    def from_dataset(cls, dataset: Dataset, *, limit: int | None = None) -> EvaluationSet:
        """The test split of ``dataset`` (its first ``limit`` samples if given)."""
        end = None if limit is None else int(limit)
        return cls(x=np.asarray(dataset.test_x[:end], dtype=np.float32),
                   y=np.asarray(dataset.test_y[:end]))


def evaluate_accuracy(compiled: CompiledModel, x: np.ndarray, y: np.ndarray, *,
                      batch_size: int) -> float:
    """Top-1 accuracy in [0, 1] of ``compiled`` on ``x``/``y``, in batches of ``batch_size``.

    ``batch_size`` must be the batch the model was compiled for (static-shape runtimes
    accept no other); the last partial batch is padded with zeros and the padding's
    outputs are ignored.
    """
    evaluation = EvaluationSet(x=x, y=y)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise SettingsError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    data = np.ascontiguousarray(evaluation.x, dtype=np.float32)
    correct = 0
    batch = np.zeros((batch_size, *data.shape[1:]), dtype=np.float32)
    for start in range(0, len(data), batch_size):
        chunk = data[start:start + batch_size]
        batch[:len(chunk)] = chunk
        batch[len(chunk):] = 0.0
        try:
            logits = np.asarray(compiled.run(batch))
        except Exception as error:
            raise BenchmarkError(f"running the compiled model for accuracy failed: "
                                 f"{type(error).__name__}: {error}") from error
        if logits.ndim != 2 or len(logits) != batch_size:
            raise BenchmarkError(f"accuracy needs (batch, classes) logits, the model returned "
                                 f"shape {logits.shape}")
        predicted = logits[:len(chunk)].argmax(axis=1)
        correct += int((predicted == evaluation.y[start:start + len(chunk)]).sum())
    return correct / len(data)
