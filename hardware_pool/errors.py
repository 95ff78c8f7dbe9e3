"""Errors of the hardware pool."""

from __future__ import annotations

from search_spaces.errors import ParetonasError


class TargetUnavailableError(ParetonasError):
    """A target's device or its measuring actor cannot be used (missing, died, timed out)."""
