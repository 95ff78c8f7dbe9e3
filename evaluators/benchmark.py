"""Compile an ONNX file with one backend and time it: one hardware measurement."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evaluators.accuracy import EvaluationSet, evaluate_accuracy
from evaluators.backends import BackendOptions, get_backend
from evaluators.errors import BackendUnavailableError, BenchmarkError, CompileError
from evaluators.timing import TimingSettings, time_model


@dataclass(frozen=True)
class Measurement:
    """Where and how a model was measured, its compile time and latency statistics."""

    backend: str
    device: str
    precision: str
    threads: int
    batch_size: int
    compile_seconds: float
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    runs: int
    warmup_runs: int
    #: Top-1 accuracy of the compiled model on the evaluation set, if one was given.
    accuracy: float | None = None

    def as_metrics(self) -> dict[str, float]:
        """Flat numeric metrics for tracking and objectives."""
        return ({} if self.accuracy is None else {"accuracy": self.accuracy}) | {
            "latency_median_ms": self.median_ms,
            "latency_p90_ms": self.p90_ms,
            "latency_mean_ms": self.mean_ms,
            "latency_min_ms": self.min_ms,
            "latency_std_ms": self.std_ms,
            "runs": float(self.runs),
            "compile_s": self.compile_seconds,
        }


def measure_onnx(
    onnx_path: Path, *, backend: str, options: BackendOptions, input_shape: tuple[int, ...],
    timing: TimingSettings, seed: int = 0, evaluation: EvaluationSet | None = None,
) -> Measurement:
    """Compile ``onnx_path`` with ``backend`` for ``input_shape`` (batch first) and time it.

    With ``evaluation`` (held-out samples) the compiled model's own top-1 accuracy is
    measured too (``Measurement.accuracy``, the ``accuracy@<target>`` metric): what an
    ``int8`` target (``options.calibration``) costs in accuracy.

    Raises ``UnknownNameError`` (unknown backend), ``BackendUnavailableError`` (not on
    this machine, with the reason), ``CompileError`` or ``BenchmarkError``.
    """
    runtime = get_backend(backend)
    reason = runtime.availability(options)
    if reason:
        raise BackendUnavailableError(f"{backend} is unavailable (device={options.device!r}, "
                                      f"precision={options.precision!r}): {reason}")
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) < 2 or min(input_shape) < 1:
        raise BenchmarkError(f"input_shape must be (batch, ...) with sizes >= 1, "
                             f"got {input_shape}")
    start = time.perf_counter()
    try:
        compiled = runtime.compile(Path(onnx_path), options=options, input_shape=input_shape)
    except CompileError:
        raise
    except Exception as error:
        raise CompileError(f"{backend}: compiling {onnx_path} failed: {error}") from error
    compile_seconds = time.perf_counter() - start
    try:
        inputs = np.random.default_rng(seed).standard_normal(input_shape, dtype=np.float32)
        try:
            output = compiled.run(inputs)
            compiled.synchronize()
        except Exception as error:
            raise BenchmarkError(f"{backend}: running {onnx_path} at shape {input_shape} "
                                 f"failed: {error}") from error
        if not np.all(np.isfinite(output)):
            raise BenchmarkError(f"{backend}: {onnx_path} produced non-finite outputs")
        accuracy = None if evaluation is None else evaluate_accuracy(
            compiled, evaluation.x, evaluation.y, batch_size=input_shape[0])
        try:
            stats = time_model(compiled, inputs, timing)
        except Exception as error:
            raise BenchmarkError(f"{backend}: timing {onnx_path} failed: {error}") from error
    finally:
        compiled.close()
    return Measurement(backend=backend, device=options.device, precision=options.precision,
                       threads=options.threads, batch_size=input_shape[0],
                       compile_seconds=compile_seconds, accuracy=accuracy, **asdict(stats))
