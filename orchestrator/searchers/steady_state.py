"""The steady-state loop NSGA-II and aging evolution share: fill, then breed one child per ask."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

from orchestrator.searchers.base import Searcher
from orchestrator.searchers.population import Member, Population
from orchestrator.searchers.random_search import sample_unseen
from search_spaces import Architecture, SearchSpace

#: Children bred before giving up on finding one whose key was never proposed.
BREED_RETRIES = 32


class SteadyStateSearcher(Searcher):
    """Random unseen architectures until ``population_size`` results are known or pending,
    then one child of the bounded ``population`` per ``ask`` (``_breed``).

    Every call touches only the population, so its cost does not grow with the results.
    """

    def __init__(self, *, space: SearchSpace, seed: int, population_size: int,
                 population: Population) -> None:
        super().__init__(space=space, seed=seed)
        self.population_size = population_size
        self._proposed: set[str] = set()
        self._pending: set[str] = set()
        self._told = 0
        self._population = population

    @property
    def population(self) -> list[tuple[Architecture, tuple[float, ...]]]:
        """The current population, best (rank, crowding) first."""
        return [(member.arch, member.objectives) for member in self._population.members]

    @property
    def pending(self) -> set[str]:
        """Keys proposed and not yet told."""
        return set(self._pending)

    def ask(self) -> Architecture:
        if self._told + len(self._pending) < self.population_size or not len(self._population):
            arch = self._random()
        else:
            arch = self._breed(self._population.members)
        self._remember(arch)
        self._pending.add(arch.key)
        return arch

    def tell(self, arch: Architecture, *, objectives: Sequence[float], violation: float = 0.0,
             fidelity: float | None = None) -> None:
        values = self._checked(arch, objectives, violation)
        if fidelity is None:
            self._pending.discard(arch.key)
            self._told += 1
        self._remember(arch)
        self._population.add(arch, values, violation)

    def tell_failure(self, arch: Architecture, reason: str) -> None:
        """``arch`` never joins the population and is not proposed again."""
        self._pending.discard(arch.key)
        self._remember(arch)
        self._population.remove(arch.key)

    @abstractmethod
    def _breed(self, members: list[Member]) -> Architecture:
        """A child of ``members`` (best first), preferably one never proposed."""

    def _remember(self, arch: Architecture) -> None:
        """Mark ``arch`` as proposed (never proposed again while others are unseen)."""
        self._proposed.add(arch.key)

    def _random(self) -> Architecture:
        return sample_unseen(self.space, self.rng, self._proposed) or self.space.sample(self.rng)
