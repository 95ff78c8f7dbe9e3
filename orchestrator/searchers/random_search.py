"""Uniform random search, plus the bounded "sample something new" helper NSGA-II shares."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence

import numpy as np

from orchestrator.searchers.base import Searcher
from search_spaces import Architecture, SearchSpace

#: Rejection-sampling attempts before looking for an unseen architecture another way.
SAMPLE_RETRIES = 64
#: Spaces up to this size are enumerated when rejection sampling keeps hitting seen keys.
ENUMERATION_LIMIT = 4096


def sample_unseen(
    space: SearchSpace, rng: np.random.Generator, seen: Collection[str]
) -> Architecture | None:
    """A uniform sample whose key is not in ``seen``, or ``None`` if none was found.

    Tries ``SAMPLE_RETRIES`` samples, then (for small spaces) picks among the unseen
    architectures directly; never loops without bound.
    """
    size = space.size()
    if len(seen) >= size:
        return None
    for _ in range(SAMPLE_RETRIES):
        arch = space.sample(rng)
        if arch.key not in seen:
            return arch
    if size > ENUMERATION_LIMIT:
        return None
    choices = space.choices()
    names = [choice.name for choice in choices]
    every = (space.architecture(dict(zip(names, values, strict=True)))
             for values in itertools.product(*(choice.options() for choice in choices)))
    unseen = [arch for arch in every if arch.key not in seen]
    return unseen[int(rng.integers(len(unseen)))] if unseen else None


class RandomSearcher(Searcher):
    """Uniform samples of the space; no architecture twice until the space runs out."""

    def __init__(self, *, space: SearchSpace, seed: int) -> None:
        super().__init__(space=space, seed=seed)
        self._proposed: set[str] = set()

    def ask(self) -> Architecture:
        arch = sample_unseen(self.space, self.rng, self._proposed) or self.space.sample(self.rng)
        self._proposed.add(arch.key)
        return arch

    def tell(self, arch: Architecture, *, objectives: Sequence[float], violation: float = 0.0,
             fidelity: float | None = None) -> None:
        """Nothing to learn: random search ignores results."""
