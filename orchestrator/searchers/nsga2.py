"""Steady-state NSGA-II with Deb's constrained domination, for asynchronous parallel trials.

Instead of waiting for whole generations, every ``ask`` breeds one child from the
current population, and every ``tell`` inserts one result into it and drops the worst
member by constrained non-dominated rank, then crowding distance ("mu + 1"): the cost
of either call depends on the population size, not on how many results were told.
Until ``population_size`` results are known or pending, ``ask`` returns random unseen
architectures.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

from orchestrator.errors import ConfigError
from orchestrator.searchers.population import Member, Population
from orchestrator.searchers.random_search import sample_unseen
from orchestrator.searchers.steady_state import BREED_RETRIES, SteadyStateSearcher
from search_spaces import Architecture, SearchSpace


class NSGA2Searcher(SteadyStateSearcher):
    """NSGA-II over a space's ``crossover`` and ``mutate``; all objectives minimised.

    ``population_size`` results form the population; parents win ``tournament_size``
    tournaments on (rank, -crowding); a child is the parents' crossover with
    probability ``crossover_probability`` (else a copy of the first parent), then
    mutated with per-choice ``mutation_rate`` (default 1/#choices, at least one change).
    Up to ``archive_size`` non-dominated results stay in the population beyond
    ``population_size`` (an elite archive of parents). The defaults (a small population,
    mutation only, archive of 16) were the best setting summed over the NAS-Bench-201
    CIFAR-10 and ImageNet16 replays (``benchmarks/searchers.py``).
    """

    min_objectives: ClassVar[int] = 2

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int,
        population_size: int = 4,
        crossover_probability: float = 0.0,
        mutation_rate: float | None = None,
        tournament_size: int = 2,
        archive_size: int = 16,
    ) -> None:
        if not _is_int(population_size) or population_size < 2:
            raise ConfigError(f"population_size must be an integer >= 2, got {population_size!r}")
        if not _is_real(crossover_probability) or not 0 <= crossover_probability <= 1:
            raise ConfigError(
                f"crossover_probability must be a number in [0, 1], got {crossover_probability!r}"
            )
        if mutation_rate is not None and (not _is_real(mutation_rate) or not 0 < mutation_rate <= 1):
            raise ConfigError(f"mutation_rate must be null or a number in (0, 1], got {mutation_rate!r}")
        if not _is_int(tournament_size) or not 1 <= tournament_size <= population_size:
            raise ConfigError(
                f"tournament_size must be an integer in 1..population_size ({population_size}), "
                f"got {tournament_size!r}"
            )
        if not _is_int(archive_size) or archive_size < 0:
            raise ConfigError(f"archive_size must be an integer >= 0, got {archive_size!r}")
        super().__init__(space=space, seed=seed, population_size=int(population_size),
                         population=Population(int(population_size), eviction="worst",
                                               archive=int(archive_size)))
        self.archive_size = int(archive_size)
        self.crossover_probability = float(crossover_probability)
        self.mutation_rate = None if mutation_rate is None else float(mutation_rate)
        self.tournament_size = int(tournament_size)

    # -- internals ----------------------------------------------------------------------
    def _tournament(self, population: list[Member]) -> Member:
        entrants = self.rng.choice(len(population), size=self.tournament_size,
                                   replace=len(population) < self.tournament_size)
        return min((population[int(i)] for i in entrants), key=Member.fitness)

    def _breed(self, population: list[Member]) -> Architecture:
        """A child whose key was never proposed; else a random unseen one; else a repeat."""
        for _ in range(BREED_RETRIES):
            child = self._child(population)
            if child.key not in self._proposed:
                return child
        return sample_unseen(self.space, self.rng, self._proposed) or child

    def _child(self, population: list[Member]) -> Architecture:
        first, second = self._tournament(population), self._tournament(population)
        child = first.arch
        if self.rng.random() < self.crossover_probability:
            child = self.space.crossover(first.arch, second.arch, self.rng)
        return self.space.mutate(child, self.rng, rate=self.mutation_rate)


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)
