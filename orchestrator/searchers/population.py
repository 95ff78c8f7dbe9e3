"""A bounded population ranked by constrained non-dominated sorting and crowding distance.

Inserting a result re-ranks at most ``capacity + 1`` members, so the cost of a ``tell``
does not grow with the number of results told so far (steady-state "mu + 1" update).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from orchestrator.pareto import crowding_distance, non_dominated_sort
from search_spaces import Architecture


@dataclass(frozen=True)
class Member:
    """One evaluated architecture, its rank (0 = non-dominated) and crowding distance."""

    arch: Architecture
    objectives: tuple[float, ...]
    violation: float
    age: int
    rank: int = 0
    crowding: float = float("inf")

    def fitness(self) -> tuple[int, float]:
        """Sort key, smaller is better: rank, then larger crowding."""
        return self.rank, -self.crowding


class Population:
    """At most ``capacity`` members; when full, ``add`` drops the worst or the oldest.

    ``eviction="worst"`` (NSGA-II) drops the member with the worst (rank, crowding);
    ``eviction="oldest"`` (regularized evolution) drops the earliest inserted. With
    ``archive``, non-dominated members are kept beyond ``capacity`` up to that many (an
    elite archive: the front found so far stays available as parents).
    """

    def __init__(self, capacity: int, *, eviction: Literal["worst", "oldest"] = "worst",
                 archive: int = 0) -> None:
        self.capacity = capacity
        self.eviction = eviction
        self.archive = archive
        self._members: list[Member] = []
        self._age = 0

    def __len__(self) -> int:
        return len(self._members)

    @property
    def members(self) -> list[Member]:
        """Members, best (rank, crowding) first."""
        return sorted(self._members, key=Member.fitness)

    def keys(self) -> set[str]:
        return {member.arch.key for member in self._members}

    def add(self, arch: Architecture, objectives: Sequence[float], violation: float = 0.0) -> None:
        """Insert (or update, for the same key) a result, then evict down to ``capacity``."""
        members = [m for m in self._members if m.arch.key != arch.key]
        self._age += 1
        members.append(Member(arch, tuple(objectives), float(violation), self._age))
        members = self._ranked(members)
        if len(members) > self.capacity:
            if self.eviction == "oldest":
                members.remove(min(members, key=lambda m: m.age))
                members = self._ranked(members)
            else:
                worst = max(members, key=Member.fitness)
                if worst.rank > 0 or len(members) > max(self.capacity, self.archive):
                    members.remove(worst)
                    members = self._ranked(members)
        self._members = members

    def remove(self, key: str) -> None:
        if any(m.arch.key == key for m in self._members):
            self._members = self._ranked([m for m in self._members if m.arch.key != key])

    @staticmethod
    def _ranked(members: list[Member]) -> list[Member]:
        if not members:
            return members
        points = np.array([m.objectives for m in members])
        violations = np.array([m.violation for m in members])
        ranked: list[Member] = []
        for rank, front in enumerate(non_dominated_sort(points, violations)):
            crowding = crowding_distance(points[front])
            ranked += [replace(members[int(i)], rank=rank, crowding=float(c))
                       for i, c in zip(front, crowding, strict=True)]
        return ranked
