"""The searcher protocol: ask for architectures, tell them how they scored.

A searcher knows nothing about Ray: the Tune driver wraps any searcher in a Ray Tune
``Searcher`` adapter, and the tests (or a tabular replay) drive it directly.

Lifecycle, per candidate::

    arch = searcher.ask()                # may be called again before results arrive
    searcher.tell(arch, objectives=...)  # or tell_failure(arch, reason) if it failed

Objective vectors are *minimised*: the caller negates objectives to maximise (see
``orchestrator.objectives``). ``violation`` is 0 for feasible candidates and the total
amount by which constraints are exceeded otherwise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from search_spaces import Architecture, SearchSpace


class Searcher(ABC):
    """Proposes architectures from ``space``; keyword-only constructor with an explicit seed."""

    def __init__(self, *, space: SearchSpace, seed: int) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed)

    @abstractmethod
    def ask(self) -> Architecture:
        """The next architecture to evaluate."""

    @abstractmethod
    def tell(self, arch: Architecture, *, objectives: Sequence[float], violation: float = 0.0
             ) -> None:
        """Record a finished evaluation (objective vector to minimise)."""

    def tell_failure(self, arch: Architecture, reason: str) -> None:  # noqa: B027 (optional hook)
        """Record that evaluating ``arch`` failed; default: nothing to learn from it."""
