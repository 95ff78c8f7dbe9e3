"""Steady-state NSGA-II with Deb's constrained domination, for asynchronous parallel trials.

Instead of waiting for whole generations, every ``ask`` breeds one child from the
current population, and every ``tell`` inserts one result into it and drops the worst
member by constrained non-dominated rank, then crowding distance ("mu + 1"): the cost
of either call depends on the population size, not on how many results were told.
The first ``population_size`` architectures are an initial design (uniform
architectures, then a Latin hypercube: ``orchestrator.searchers.design``).

By default a child is a Pareto local search step: a parent from the non-dominated
members (a crowding-distance tournament, so the ends and sparse stretches of the front
go first) changes exactly one choice, to a neighbour never proposed before; when every
neighbour of the front was proposed, the dominated members' neighbours follow. Duplicate
proposals would cost evaluations, so the neighbours are enumerated, not re-drawn.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

import numpy as np

from orchestrator.errors import ConfigError
from orchestrator.searchers.design import initial_design
from orchestrator.searchers.population import Member, Population
from orchestrator.searchers.random_search import sample_unseen
from orchestrator.searchers.steady_state import BREED_RETRIES, SteadyStateSearcher
from search_spaces import Architecture, SearchSpace


class NSGA2Searcher(SteadyStateSearcher):
    """NSGA-II over a space's encoding; all objectives minimised.

    ``population_size`` results form the population, plus up to ``archive_size``
    non-dominated results beyond it (an elite archive of parents). With the default
    ``mutation_rate=None`` and ``crossover_probability=0`` a child is one choice of a
    front member changed (see the module docstring); the parent wins a
    ``tournament_size`` tournament on crowding distance. Otherwise the classic operators
    apply: parents win tournaments on (rank, -crowding), the child is their uniform
    crossover with probability ``crossover_probability`` (else a copy of the first),
    then mutated with per-choice ``mutation_rate`` (default 1/#choices, at least one
    change). The defaults were chosen across the NAS-Bench-201 (CIFAR-10/100,
    ImageNet16; two and three objectives) and recorded MLP replays of
    ``benchmarks/searchers.py``.
    """

    min_objectives: ClassVar[int] = 2

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int,
        population_size: int = 8,
        crossover_probability: float = 0.0,
        mutation_rate: float | None = None,
        tournament_size: int = 2,
        archive_size: int = 64,
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
        self._design: list[Architecture] | None = None
        self._indices: set[int] = set()  # mixed-radix indices of the proposed encodings
        self._exhausted: set[str] = set()  # keys whose neighbours were all proposed
        cardinalities = space.cardinalities()
        self._radix = [int(np.prod(cardinalities[position + 1:], dtype=object))
                       for position in range(len(cardinalities))]

    # -- internals ----------------------------------------------------------------------
    def _remember(self, arch: Architecture) -> None:
        super()._remember(arch)
        self._indices.add(self._index(self.space.encode(arch)))

    def _index(self, code: np.ndarray) -> int:
        return sum(int(value) * radix for value, radix in zip(code, self._radix, strict=True))

    def _random(self) -> Architecture:
        """The next unproposed architecture of the initial design, else a random unseen one."""
        if self._design is None:
            self._design = initial_design(self.space, self.rng, self.population_size)[::-1]
        while self._design:
            arch = self._design.pop()
            if arch.key not in self._proposed:
                return arch
        return super()._random()

    def _tournament(self, population: list[Member]) -> Member:
        entrants = self.rng.choice(len(population), size=self.tournament_size,
                                   replace=len(population) < self.tournament_size)
        return min((population[int(i)] for i in entrants), key=Member.fitness)

    def _breed(self, population: list[Member]) -> Architecture:
        """A child whose key was never proposed; else a random unseen one; else a repeat."""
        if self.mutation_rate is None and self.crossover_probability == 0:
            front = [member for member in population if member.rank == 0]
            rest = [member for member in population if member.rank > 0]
            for parent in [*self._parents(front), *self._parents(rest)]:
                if parent.arch.key in self._exhausted:
                    continue
                neighbour = self._unseen_neighbour(parent.arch)
                if neighbour is not None:
                    return neighbour
                self._exhausted.add(parent.arch.key)
        for _ in range(BREED_RETRIES):
            child = self._child(population)
            if child.key not in self._proposed:
                return child
        return sample_unseen(self.space, self.rng, self._proposed) or child

    def _parents(self, members: list[Member]) -> list[Member]:
        """``members`` in random order, the winner of a crowding tournament first."""
        if not members:
            return []
        order = [members[int(i)] for i in self.rng.permutation(len(members))]
        entrants = order[:self.tournament_size]
        first = max(entrants, key=lambda member: member.crowding)
        return [first, *(member for member in order if member is not first)]

    def _unseen_neighbour(self, arch: Architecture) -> Architecture | None:
        """A random never-proposed architecture that differs from ``arch`` in one choice."""
        code = self.space.encode(arch)
        base = self._index(code)
        unseen = [(position, option)
                  for position, cardinality in enumerate(self.space.cardinalities())
                  for option in range(cardinality)
                  if option != code[position]
                  and base + (option - int(code[position])) * self._radix[position] not in self._indices]
        if not unseen:
            return None
        position, option = unseen[int(self.rng.integers(len(unseen)))]
        code[position] = option
        return self.space.decode(code)

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
