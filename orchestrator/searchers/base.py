"""The searcher protocol: ask for architectures, tell them how they scored.

A searcher knows nothing about Ray: the Tune driver wraps any searcher in a Ray Tune
``Searcher`` adapter (which keys proposals by trial id), and the tests or a tabular
replay (``orchestrator.replay``) drive it directly.

Lifecycle, per candidate::

    arch = searcher.ask()                 # or ask_batch(n); may run ahead of results
    searcher.tell(arch, objectives=...)   # or tell_failure(arch, reason) if it failed

``tell`` may be called several times for one architecture with increasing ``fidelity``
(e.g. epochs trained) when a scheduler reports partial results; ``fidelity=None`` is a
final result. Objective vectors are *minimised*: the caller negates objectives to
maximise (see ``orchestrator.objectives``). ``violation`` is 0 for feasible candidates
and the total amount by which constraints are exceeded otherwise.

A searcher is picklable; ``state()``/``restore(state)`` snapshot and reinstate
everything it needs to continue (population, pending proposals, random generator), which
is what the Tune adapter writes to Tune's experiment checkpoints for resuming.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from orchestrator.errors import SearchError
from search_spaces import Architecture, SearchSpace


class Searcher(ABC):
    """Proposes architectures from ``space``; keyword-only constructor with an explicit seed."""

    #: Fewest objectives the searcher works with (multi-objective ones need 2).
    min_objectives: ClassVar[int] = 1
    #: Whether the searcher never proposes a key twice before the space is exhausted.
    unique_proposals: ClassVar[bool] = True

    def __init__(self, *, space: SearchSpace, seed: int) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed)
        self._num_objectives: int | None = None

    @abstractmethod
    def ask(self) -> Architecture:
        """The next architecture to evaluate."""

    def ask_batch(self, count: int) -> list[Architecture]:
        """``count`` architectures at once (e.g. for a trial that evaluates several)."""
        if count < 1:
            raise SearchError(f"ask_batch needs count >= 1, got {count}")
        return [self.ask() for _ in range(count)]

    @abstractmethod
    def tell(self, arch: Architecture, *, objectives: Sequence[float], violation: float = 0.0,
             fidelity: float | None = None) -> None:
        """Record an evaluation (objective vector to minimise); ``fidelity`` marks partial ones."""

    def tell_failure(self, arch: Architecture, reason: str) -> None:  # noqa: B027 (optional hook)
        """Record that evaluating ``arch`` failed; default: nothing to learn from it."""

    def state(self) -> dict[str, Any]:
        """A picklable snapshot of everything needed to continue the search."""
        return copy.deepcopy({k: v for k, v in self.__dict__.items() if k != "space"})

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a ``state()`` snapshot (of a searcher built with the same space)."""
        self.__dict__.update(copy.deepcopy(state))

    # -- helpers for subclasses ------------------------------------------------------------
    def _checked(self, arch: Architecture, objectives: Sequence[float], violation: float
                 ) -> tuple[float, ...]:
        """The objective tuple, after checking it is finite and consistently sized."""
        values = tuple(float(value) for value in objectives)
        if not values or not all(math.isfinite(value) for value in values):
            raise SearchError(f"objectives of {arch.key} must be finite numbers, got {list(values)}")
        if self._num_objectives is not None and len(values) != self._num_objectives:
            raise SearchError(
                f"{arch.key} has {len(values)} objectives, earlier results {self._num_objectives}"
            )
        if not math.isfinite(violation) or violation < 0:
            raise SearchError(f"violation of {arch.key} must be finite and >= 0, got {violation!r}")
        self._num_objectives = len(values)
        return values
