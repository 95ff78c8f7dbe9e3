"""Errors raised while training, exporting, compiling or timing a candidate."""

from __future__ import annotations

from search_spaces.errors import ParetonasError


class SettingsError(ParetonasError, ValueError):
    """Training or timing settings are invalid; the message names the field."""


class DatasetError(ParetonasError):
    """A dataset is unknown, missing on this machine, or malformed."""


class TrainingError(ParetonasError):
    """Training a candidate failed (diverged, crashed, ran out of memory)."""


class ExportError(ParetonasError):
    """A candidate could not be exported to a valid ONNX model."""


class CompileError(ParetonasError):
    """A backend could not compile an ONNX model."""


class BenchmarkError(ParetonasError):
    """Timing a compiled model failed."""


class BackendUnavailableError(ParetonasError):
    """A backend's runtime or device is not present on this machine."""


class CheckpointError(ParetonasError):
    """A supernet checkpoint is unreadable or does not match the search space."""


class TrainingInterrupted(ParetonasError):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint to resume from."""
