"""Compile ONNX files with one or more backends and time them: hardware measurements.

``measure_onnx`` measures one (backend, options, input shape) job; ``measure_interleaved``
compiles several jobs of one model once and times them in alternating rounds, so that jobs
sharing a device see the same conditions; ``measure_many`` does the same for several
models at once (round-robin over every model and job: each one's latency then integrates
the device's state over the same period, which is what makes two passes agree on a
shared machine). Each returns one result (a ``Measurement`` or the error) per job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evaluators.accuracy import EvaluationSet, evaluate_accuracy
from evaluators.backends import BackendOptions, CompiledModel, get_backend
from evaluators.errors import BackendUnavailableError, BenchmarkError, CompileError
from evaluators.timing import TimingRun, TimingSettings, harness_floor_ms
from search_spaces.errors import ParetonasError


@dataclass(frozen=True)
class Measurement:
    """Where and how a model was measured, its compile time and latency statistics.

    ``runtime``/``runtime_version`` name the backend's SDK, ``device_name`` the hardware
    (CPU model, OpenVINO's FULL_DEVICE_NAME, ...). ``ci_low_ms``/``ci_high_ms`` bound the
    median (see ``TimingStats``), ``floor_ms`` is the timing loop's own cost per sample.
    ``accuracy`` is the compiled model's top-1 accuracy on the evaluation set, if one was
    given; ``round_medians_ms`` the rounds' medians behind ``median_ms``.
    """

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
    ci_low_ms: float
    ci_high_ms: float
    rounds: int
    floor_ms: float
    calls_per_sample: int
    timed_seconds: float
    stop_reason: str
    runtime: str
    runtime_version: str
    device_name: str
    accuracy: float | None = None
    round_medians_ms: tuple[float, ...] = ()

    def as_metrics(self) -> dict[str, float]:
        """Flat numeric metrics for tracking and objectives."""
        return ({} if self.accuracy is None else {"accuracy": self.accuracy}) | {
            "latency_median_ms": self.median_ms,
            "latency_p90_ms": self.p90_ms,
            "latency_mean_ms": self.mean_ms,
            "latency_min_ms": self.min_ms,
            "latency_std_ms": self.std_ms,
            "latency_ci_low_ms": self.ci_low_ms,
            "latency_ci_high_ms": self.ci_high_ms,
            "harness_floor_ms": self.floor_ms,
            "runs": float(self.runs),
            "rounds": float(self.rounds),
            "compile_s": self.compile_seconds,
        }


@dataclass(frozen=True, kw_only=True)
class MeasureJob:
    """One way to measure a model: a backend, its options and the input shape (batch first)."""

    backend: str
    options: BackendOptions
    input_shape: tuple[int, ...]


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
    job = MeasureJob(backend=backend, options=options, input_shape=input_shape)
    result = measure_interleaved(onnx_path, jobs=[job], timing=timing, seed=seed,
                                 evaluation=evaluation)[0]
    if isinstance(result, ParetonasError):
        raise result
    return result


def measure_interleaved(
    onnx_path: Path, *, jobs: Sequence[MeasureJob], timing: TimingSettings, seed: int = 0,
    evaluation: EvaluationSet | None = None,
) -> list[Measurement | ParetonasError]:
    """Compile ``onnx_path`` once per job, then time all jobs in alternating rounds.

    Each job's first round starts with its warm-up; every round with
    ``timing.round_warmup_runs`` untimed calls.

    Returns one entry per job, in order: its ``Measurement``, or the error that stopped
    it (``UnknownNameError``, ``BackendUnavailableError``, ``CompileError``,
    ``BenchmarkError``); a failing job does not stop the others. With ``evaluation`` each
    job's compiled model is also scored on it (untimed, before timing starts).
    """
    return measure_many([(Path(onnx_path), jobs)], timing=timing, seed=seed,
                        evaluation=evaluation)[0]


def measure_many(
    models: Sequence[tuple[Path, Sequence[MeasureJob]]], *, timing: TimingSettings,
    seed: int = 0, evaluation: EvaluationSet | None = None,
    on_progress: Callable[[], None] | None = None,
) -> list[list[Measurement | ParetonasError]]:
    """Compile every (ONNX file, jobs) pair's jobs, then time them all round-robin.

    One round of every unfinished job in turn, over and over, until each has stopped by
    ``timing``'s rules: the rounds of all models and jobs alternate, so every latency is
    the median over the same stretch of the device's life, not over a burst of its own.
    All compiled models stay loaded until the end. ``on_progress`` is called after each
    model is compiled and after each sweep (one round of every unfinished job). Errors as in
    ``measure_interleaved``: returns, per model, one entry per job.
    """
    prepared: list[list[_Prepared | ParetonasError]] = []
    try:
        for onnx_path, jobs in models:
            prepared.append([_prepare_job(Path(onnx_path), job, timing, seed, evaluation)
                             for job in jobs])
            if on_progress is not None:
                on_progress()
        live = [item for entries in prepared for item in entries if isinstance(item, _Prepared)]
        while live:
            for item in live:
                try:
                    item.timing.round()
                except Exception as error:
                    item.error = BenchmarkError(
                        f"{item.job.backend}: timing {item.onnx_path} failed: {error}")
                    item.error.__cause__ = error
            live = [item for item in live if item.error is None and not item.timing.done]
            if on_progress is not None:
                on_progress()
        return [[item if isinstance(item, ParetonasError) else item.result()
                 for item in entries] for entries in prepared]
    finally:
        for entries in prepared:
            for entry in entries:
                if isinstance(entry, _Prepared):
                    entry.compiled.close()


def _prepare_job(onnx_path: Path, job: MeasureJob, timing: TimingSettings, seed: int,
                 evaluation: EvaluationSet | None) -> _Prepared | ParetonasError:
    """``_prepare``, with any failure turned into that job's error."""
    try:
        return _prepare(onnx_path, job, timing, seed, evaluation)
    except ParetonasError as error:
        return error
    except Exception as error:  # a backend's own bug: that job fails, the others go on
        failure = BenchmarkError(f"{job.backend}: preparing {onnx_path} failed: "
                                 f"{type(error).__name__}: {error}")
        failure.__cause__ = error
        return failure


@dataclass
class _Prepared:
    """A compiled, bound and warmed-up job, timed one round at a time."""

    onnx_path: Path
    job: MeasureJob
    compiled: CompiledModel
    timing: TimingRun
    compile_seconds: float
    runtime: str
    runtime_version: str
    device_name: str
    accuracy: float | None = None
    error: ParetonasError | None = None

    def result(self) -> Measurement | ParetonasError:
        if self.error is not None:
            return self.error
        job = self.job
        return Measurement(
            backend=job.backend, device=job.options.device, precision=job.options.precision,
            threads=job.options.threads, batch_size=job.input_shape[0],
            compile_seconds=self.compile_seconds, runtime=self.runtime,
            runtime_version=self.runtime_version, device_name=self.device_name,
            accuracy=self.accuracy,
            **asdict(self.timing.stats()),
        )


def _prepare(onnx_path: Path, job: MeasureJob, timing: TimingSettings, seed: int,
             evaluation: EvaluationSet | None) -> _Prepared:
    """Check, compile, score (with ``evaluation``), bind inputs and check outputs of one job."""
    backend, options = job.backend, job.options
    runtime = get_backend(backend)
    reason = runtime.availability(options)
    if reason:
        raise BackendUnavailableError(f"{backend} is unavailable (device={options.device!r}, "
                                      f"precision={options.precision!r}): {reason}")
    input_shape = tuple(int(d) for d in job.input_shape)
    if len(input_shape) < 2 or min(input_shape) < 1:
        raise BenchmarkError(f"input_shape must be (batch, ...) with sizes >= 1, "
                             f"got {input_shape}")
    job = MeasureJob(backend=backend, options=options, input_shape=input_shape)
    start = time.perf_counter()
    try:
        compiled = runtime.compile(onnx_path, options=options, input_shape=input_shape)
    except CompileError:
        raise
    except Exception as error:
        raise CompileError(f"{backend}: compiling {onnx_path} failed: {error}") from error
    compile_seconds = time.perf_counter() - start
    try:
        inputs = np.random.default_rng(seed).standard_normal(input_shape, dtype=np.float32)
        accuracy = None if evaluation is None else evaluate_accuracy(
            compiled, evaluation.x, evaluation.y, batch_size=input_shape[0])
        try:
            compiled.prepare(inputs)
            output = compiled.prepared_output()
            compiled.synchronize()
        except Exception as error:
            raise BenchmarkError(f"{backend}: running {onnx_path} at shape {input_shape} "
                                 f"failed: {error}") from error
        if not np.all(np.isfinite(output)):
            raise BenchmarkError(f"{backend}: {onnx_path} produced non-finite outputs")
        run = TimingRun(compiled, timing,
                        floor_ms=harness_floor_ms(calls_per_sample=timing.calls_per_sample))
    except BaseException:
        compiled.close()
        raise
    return _Prepared(onnx_path=onnx_path, job=job, compiled=compiled, timing=run,
                     compile_seconds=compile_seconds, runtime=runtime.sdk_module,
                     runtime_version=runtime.runtime_version(),
                     device_name=runtime.device_name(options), accuracy=accuracy)
