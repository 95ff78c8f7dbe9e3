"""Errors of the hardware pool."""

from __future__ import annotations

from search_spaces.errors import ParetonasError


class TargetUnavailableError(ParetonasError):
    """A target's device or its measuring actor cannot be used (missing, died, timed out)."""


class MeasurementTimeoutError(TargetUnavailableError):
    """A measurement ran past its timeout; its device actor was restarted."""


class CoreBusyError(TargetUnavailableError):
    """Another process held a measurement core's lock for longer than we may wait."""
