"""Errors of the orchestrator layer (configuration, search, tracking, jobs)."""

from __future__ import annotations

from search_spaces.errors import ParetonasError


class ConfigError(ParetonasError, ValueError):
    """A configuration file or value is invalid; the message names the YAML path."""


class SearchError(ParetonasError):
    """The search itself could not run or finish."""


class CandidateError(ParetonasError):
    """A candidate failed at one stage (build, data, train, export, measure); names both."""


class TrackingError(ParetonasError):
    """Results could not be written to or read from the tracking store."""


class SelectionError(ParetonasError, ValueError):
    """A model could not be selected from a search's front (bad condition, nothing matches)."""
