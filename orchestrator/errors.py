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


class SearchInterrupted(SearchError):
    """The user stopped the search (Ctrl-C); finished candidates are kept and it can resume."""

    def __init__(self, *, done: int, budget: int, experiment_path: str, run_id: str | None) -> None:
        self.done = done
        self.budget = budget
        self.experiment_path = experiment_path
        self.run_id = run_id
        super().__init__(
            f"search interrupted: {done} of {budget} candidates finished and are kept"
            + (f" in MLflow run {run_id}" if run_id else "")
            + f"; resume with: paretonas resume {experiment_path}"
        )


class ClusterError(ParetonasError):
    """A Ray cluster or one of its jobs cannot be reached or used; names the address or job."""
