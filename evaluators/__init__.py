"""Evaluate a candidate: train it, export it to ONNX, compile and time it per backend."""

from evaluators.accuracy import EvaluationSet, evaluate_accuracy
from evaluators.backends import (
    BACKENDS,
    Backend,
    BackendOptions,
    CompiledModel,
    get_backend,
)
from evaluators.benchmark import (
    MeasureJob,
    Measurement,
    measure_interleaved,
    measure_many,
    measure_onnx,
)
from evaluators.data import DATASETS, Dataset, load_dataset
from evaluators.errors import (
    BackendUnavailableError,
    BenchmarkError,
    CompileError,
    DatasetError,
    ExportError,
    SettingsError,
    TrainingError,
)
from evaluators.export import count_parameters, export_onnx
from evaluators.quantize import calibration_samples, with_calibration
from evaluators.timing import (
    TimingRun,
    TimingSettings,
    TimingStats,
    harness_floor_ms,
    median_interval,
    time_model,
)
from evaluators.training import TrainingResult, TrainingSettings, train_and_evaluate

__all__ = [
    "BACKENDS",
    "DATASETS",
    "Backend",
    "BackendOptions",
    "BackendUnavailableError",
    "BenchmarkError",
    "CompileError",
    "CompiledModel",
    "Dataset",
    "DatasetError",
    "EvaluationSet",
    "ExportError",
    "MeasureJob",
    "Measurement",
    "SettingsError",
    "TimingRun",
    "TimingSettings",
    "TimingStats",
    "TrainingError",
    "TrainingResult",
    "TrainingSettings",
    "calibration_samples",
    "count_parameters",
    "evaluate_accuracy",
    "export_onnx",
    "get_backend",
    "harness_floor_ms",
    "load_dataset",
    "measure_interleaved",
    "measure_many",
    "measure_onnx",
    "median_interval",
    "time_model",
    "train_and_evaluate",
    "with_calibration",
]
