"""Steady-state NSGA-II with Deb's constrained domination, for asynchronous parallel trials.

Instead of waiting for whole generations, every ``ask`` breeds one child from the
current population: the best ``population_size`` completed evaluations by constrained
non-dominated rank, then crowding distance. Until that many results are known or
pending, ``ask`` returns random unseen architectures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from orchestrator.errors import ConfigError, SearchError
from orchestrator.pareto import crowding_distance, non_dominated_sort
from orchestrator.searchers.base import Searcher
from orchestrator.searchers.random_search import sample_unseen
from search_spaces import Architecture, SearchSpace

#: Children bred before giving up on finding one whose key was never proposed.
BREED_RETRIES = 32


@dataclass(frozen=True)
class _Result:
    arch: Architecture
    objectives: tuple[float, ...]
    violation: float


@dataclass(frozen=True)
class _Member:
    arch: Architecture
    objectives: tuple[float, ...]
    rank: int
    crowding: float


class NSGA2Searcher(Searcher):
    """NSGA-II over a space's ``crossover`` and ``mutate``; all objectives minimised.

    ``population_size`` results form the population; parents win ``tournament_size``
    tournaments on (rank, -crowding); a child is the parents' crossover with
    probability ``crossover_probability`` (else a copy of the first parent), then
    mutated with per-choice ``mutation_rate`` (default 1/#choices, at least one change).
    """

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int,
        population_size: int = 16,
        crossover_probability: float = 0.9,
        mutation_rate: float | None = None,
        tournament_size: int = 2,
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
        super().__init__(space=space, seed=seed)
        self.population_size = int(population_size)
        self.crossover_probability = float(crossover_probability)
        self.mutation_rate = None if mutation_rate is None else float(mutation_rate)
        self.tournament_size = int(tournament_size)
        self._proposed: set[str] = set()
        self._pending: set[str] = set()
        self._results: dict[str, _Result] = {}

    @property
    def population(self) -> list[tuple[Architecture, tuple[float, ...]]]:
        """The current population, best (rank, crowding) first."""
        return [(member.arch, member.objectives) for member in self._population()]

    def ask(self) -> Architecture:
        if len(self._results) + len(self._pending) < self.population_size or not self._results:
            arch = self._random()
        else:
            arch = self._breed(self._population())
        self._proposed.add(arch.key)
        self._pending.add(arch.key)
        return arch

    def tell(self, arch: Architecture, *, objectives: Sequence[float], violation: float = 0.0
             ) -> None:
        values = tuple(float(value) for value in objectives)
        known = next(iter(self._results.values()), None)
        if not values or not np.all(np.isfinite(values)):
            raise SearchError(f"objectives of {arch.key} must be finite numbers, got {list(values)}")
        if known is not None and len(values) != len(known.objectives):
            raise SearchError(
                f"{arch.key} has {len(values)} objectives, earlier results {len(known.objectives)}"
            )
        if not np.isfinite(violation) or violation < 0:
            raise SearchError(f"violation of {arch.key} must be finite and >= 0, got {violation!r}")
        self._pending.discard(arch.key)
        self._proposed.add(arch.key)
        self._results[arch.key] = _Result(arch, values, float(violation))

    def tell_failure(self, arch: Architecture, reason: str) -> None:
        """``arch`` never joins the population and is not proposed again."""
        self._pending.discard(arch.key)
        self._proposed.add(arch.key)
        self._results.pop(arch.key, None)

    # -- internals ----------------------------------------------------------------------
    def _random(self) -> Architecture:
        return sample_unseen(self.space, self.rng, self._proposed) or self.space.sample(self.rng)

    def _population(self) -> list[_Member]:
        """Best ``population_size`` results by constrained rank, then crowding distance."""
        results = list(self._results.values())
        if not results:
            return []
        points = np.array([result.objectives for result in results])
        violations = np.array([result.violation for result in results])
        members: list[_Member] = []
        for rank, front in enumerate(non_dominated_sort(points, violations)):
            crowding = crowding_distance(points[front])
            for position in np.argsort(-crowding, kind="stable"):
                index = int(front[position])
                members.append(_Member(results[index].arch, results[index].objectives, rank,
                                       float(crowding[position])))
            if len(members) >= self.population_size:
                break
        return members[: self.population_size]

    def _tournament(self, population: list[_Member]) -> _Member:
        entrants = self.rng.choice(len(population), size=self.tournament_size,
                                   replace=len(population) < self.tournament_size)
        return min((population[int(i)] for i in entrants), key=lambda m: (m.rank, -m.crowding))

    def _breed(self, population: list[_Member]) -> Architecture:
        """A child whose key was never proposed; else a random unseen one; else a repeat."""
        for _ in range(BREED_RETRIES):
            child = self._child(population)
            if child.key not in self._proposed:
                return child
        return sample_unseen(self.space, self.rng, self._proposed) or child

    def _child(self, population: list[_Member]) -> Architecture:
        first, second = self._tournament(population), self._tournament(population)
        child = first.arch
        if self.rng.random() < self.crossover_probability:
            child = self.space.crossover(first.arch, second.arch, self.rng)
        return self.space.mutate(child, self.rng, rate=self.mutation_rate)


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)
