"""Regularized (aging) evolution with Pareto-rank selection (Real et al., 2019, multi-objective).

The population is the last ``population_size`` results (the oldest dies when a new one
arrives); a parent is the best of ``sample_size`` random members by constrained
non-dominated rank within the population, then crowding distance; the child is the
parent mutated. Ranking touches only the population, so the cost per call is constant.
"""

from __future__ import annotations

from typing import ClassVar

from orchestrator.errors import ConfigError
from orchestrator.searchers.nsga2 import _is_int, _is_real
from orchestrator.searchers.population import Member, Population
from orchestrator.searchers.random_search import sample_unseen
from orchestrator.searchers.steady_state import BREED_RETRIES, SteadyStateSearcher
from search_spaces import Architecture, SearchSpace


class RegularizedEvolutionSearcher(SteadyStateSearcher):
    """Aging evolution: tournament of ``sample_size`` by (rank, crowding), mutate, oldest dies."""

    min_objectives: ClassVar[int] = 1

    def __init__(self, *, space: SearchSpace, seed: int, population_size: int = 20,
                 sample_size: int = 5, mutation_rate: float | None = None) -> None:
        if not _is_int(population_size) or population_size < 2:
            raise ConfigError(f"population_size must be an integer >= 2, got {population_size!r}")
        if not _is_int(sample_size) or not 1 <= sample_size <= population_size:
            raise ConfigError(f"sample_size must be an integer in 1..population_size "
                              f"({population_size}), got {sample_size!r}")
        if mutation_rate is not None and (not _is_real(mutation_rate) or not 0 < mutation_rate <= 1):
            raise ConfigError(f"mutation_rate must be null or a number in (0, 1], got {mutation_rate!r}")
        super().__init__(space=space, seed=seed, population_size=int(population_size),
                         population=Population(int(population_size), eviction="oldest"))
        self.sample_size = int(sample_size)
        self.mutation_rate = None if mutation_rate is None else float(mutation_rate)

    def _breed(self, members: list[Member]) -> Architecture:
        child = members[0].arch
        for _ in range(BREED_RETRIES):
            entrants = self.rng.choice(len(members), size=min(self.sample_size, len(members)),
                                       replace=False)
            parent = min((members[int(i)] for i in entrants), key=Member.fitness)
            child = self.space.mutate(parent.arch, self.rng, rate=self.mutation_rate)
            if child.key not in self._proposed:
                return child
        return sample_unseen(self.space, self.rng, self._proposed) or child
