"""Named, typed choices: the dimensions of a search space."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search_spaces.errors import SearchSpaceError

ChoiceValue = int | float | str | bool


class Choice(ABC):
    """One named dimension of a space. Values must be JSON scalars (int, float, str, bool)."""

    name: str

    @abstractmethod
    def options(self) -> tuple[ChoiceValue, ...]:
        """Every value this choice can take, in order."""

    def index(self, value: Any) -> int:
        """Position of ``value`` in ``options()`` (the encoding of this choice)."""
        valid = self.validate(value)
        return self.options().index(valid)

    def sample(self, rng: np.random.Generator) -> ChoiceValue:
        values = self.options()
        return values[int(rng.integers(len(values)))]

    def mutate(self, value: ChoiceValue, rng: np.random.Generator) -> ChoiceValue:
        """A value different from ``value`` (or ``value`` itself if it is the only option)."""
        others = [option for option in self.options() if option != value]
        if not others:
            return value
        return others[int(rng.integers(len(others)))]

    def validate(self, value: Any) -> ChoiceValue:
        """The option equal to ``value`` (so ``2`` becomes ``2.0``), else raise naming the choice."""
        for option in self.options():
            if _same_value(option, value):
                return option
        raise SearchSpaceError(
            f"{self.name}: {value!r} is not allowed; choose one of {list(self.options())}"
        )


@dataclass(frozen=True)
class Categorical(Choice):
    """A choice among explicit values, e.g. ``Categorical("act", ("relu", "hswish"))``."""

    name: str
    values: tuple[ChoiceValue, ...] = field()

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not self.name:
            raise SearchSpaceError("a choice needs a non-empty name")
        if not self.values:
            raise SearchSpaceError(f"{self.name}: a categorical choice needs at least one value")
        for value in self.values:
            if not isinstance(value, int | float | str | bool):
                raise SearchSpaceError(
                    f"{self.name}: values must be int, float, str or bool, got {value!r}"
                )
        if len(set(self.values)) != len(self.values):
            raise SearchSpaceError(f"{self.name}: values must be distinct, got {list(self.values)}")

    def options(self) -> tuple[ChoiceValue, ...]:
        return self.values


@dataclass(frozen=True)
class IntRange(Choice):
    """Integers ``low, low+step, ..., high`` (both ends included).

    Mutation moves to a neighbouring value, so small steps stay small.
    """

    name: str
    low: int
    high: int
    step: int = 1

    def __post_init__(self) -> None:
        if not self.name:
            raise SearchSpaceError("a choice needs a non-empty name")
        if self.step < 1:
            raise SearchSpaceError(f"{self.name}: step must be >= 1, got {self.step}")
        if self.high < self.low:
            raise SearchSpaceError(f"{self.name}: high ({self.high}) < low ({self.low})")
        if (self.high - self.low) % self.step:
            raise SearchSpaceError(
                f"{self.name}: high - low ({self.high - self.low}) must be a multiple of step "
                f"({self.step})"
            )

    def options(self) -> tuple[ChoiceValue, ...]:
        return tuple(range(self.low, self.high + 1, self.step))

    def mutate(self, value: ChoiceValue, rng: np.random.Generator) -> ChoiceValue:
        neighbours = [v for v in (int(value) - self.step, int(value) + self.step)
                      if self.low <= v <= self.high]
        if not neighbours:
            return value
        return neighbours[int(rng.integers(len(neighbours)))]


def check_unique_names(choices: Sequence[Choice]) -> None:
    seen: set[str] = set()
    for choice in choices:
        if choice.name in seen:
            raise SearchSpaceError(f"choice name {choice.name!r} is used twice")
        seen.add(choice.name)


def _same_value(option: ChoiceValue, value: Any) -> bool:
    """Equal and of a compatible type: ``True`` is not ``1``, but ``2`` may stand for ``2.0``."""
    if isinstance(option, bool) or isinstance(value, bool):
        return type(option) is type(value) and option == value
    if isinstance(option, float) and isinstance(value, int):
        return float(value) == option
    return type(option) is type(value) and option == value
