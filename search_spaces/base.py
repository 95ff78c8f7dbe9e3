"""The SDK's core: architectures (frozen values) and the ``SearchSpace`` protocol."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from search_spaces.choices import Choice, ChoiceValue, check_unique_names
from search_spaces.errors import SearchSpaceError


@dataclass(frozen=True)
class InputSpec:
    """What a built model takes and returns: one sample's shape (no batch) and class count."""

    shape: tuple[int, ...]
    num_classes: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if not self.shape or any(d < 1 for d in self.shape):
            raise SearchSpaceError(f"input shape must be positive sizes, got {self.shape}")
        if self.num_classes < 2:
            raise SearchSpaceError(f"num_classes must be >= 2, got {self.num_classes}")


@dataclass(frozen=True)
class Architecture:
    """One point of a space: a frozen, hashable mapping of choice name -> value.

    ``key`` is stable across processes and runs (a hash of the space name and the
    sorted values), so the same architecture is recognised wherever it shows up.
    """

    space: str
    values: tuple[tuple[str, ChoiceValue], ...]
    key: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(sorted((str(k), v) for k, v in self.values)))
        payload = json.dumps([self.space, self.values], sort_keys=True, separators=(",", ":"))
        object.__setattr__(self, "key", hashlib.sha256(payload.encode()).hexdigest()[:12])

    @classmethod
    def from_dict(cls, space: str, values: Mapping[str, ChoiceValue]) -> Architecture:
        return cls(space=space, values=tuple(values.items()))

    def as_dict(self) -> dict[str, ChoiceValue]:
        return dict(self.values)

    def __getitem__(self, name: str) -> ChoiceValue:
        for key, value in self.values:
            if key == name:
                return value
        raise SearchSpaceError(f"architecture {self.key} has no choice {name!r}")

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.values)


class SearchSpace(ABC):
    """A family of networks: named choices plus ``build(arch) -> nn.Module``.

    Subclasses implement ``choices`` and ``build``; sampling, mutation, crossover and
    validation come from the choices. A space is bound to one ``InputSpec`` (the
    dataset's sample shape and class count), which ``build`` must honour.
    """

    name: str = "custom"

    def __init__(self, *, input_spec: InputSpec) -> None:
        if not isinstance(input_spec, InputSpec):
            raise SearchSpaceError(f"input_spec must be an InputSpec, got {type(input_spec)}")
        self.input_spec = input_spec
        check_unique_names(self.choices())

    @abstractmethod
    def choices(self) -> Sequence[Choice]:
        """The space's dimensions, with unique names."""

    @abstractmethod
    def build(self, arch: Architecture) -> nn.Module:
        """A fresh, randomly initialised ``nn.Module`` for ``arch``."""

    # -- derived from the choices -------------------------------------------------------
    def architecture(self, values: Mapping[str, Any]) -> Architecture:
        """Validate ``values`` (every choice present, nothing extra) into an Architecture."""
        choices = {choice.name: choice for choice in self.choices()}
        extra = sorted(set(values) - set(choices))
        if extra:
            raise SearchSpaceError(
                f"{self.name}: unknown choice(s) {extra}; known: {sorted(choices)}"
            )
        missing = sorted(set(choices) - set(values))
        if missing:
            raise SearchSpaceError(f"{self.name}: missing value(s) for {missing}")
        return Architecture.from_dict(
            self.name, {name: choice.validate(values[name]) for name, choice in choices.items()}
        )

    def sample(self, rng: np.random.Generator) -> Architecture:
        return Architecture.from_dict(
            self.name, {choice.name: choice.sample(rng) for choice in self.choices()}
        )

    def mutate(
        self, arch: Architecture, rng: np.random.Generator, *, rate: float | None = None
    ) -> Architecture:
        """Change each choice with probability ``rate`` (default 1/#choices); at least one.

        Choices with a single option never count as the one change.
        """
        choices = list(self.choices())
        rate = 1.0 / len(choices) if rate is None else rate
        if not 0.0 <= rate <= 1.0:
            raise SearchSpaceError(f"mutation rate must be in [0, 1], got {rate}")
        values = arch.as_dict()
        mutable = np.array([len(choice.options()) > 1 for choice in choices])
        flips = (rng.random(len(choices)) < rate) & mutable
        if not flips.any() and mutable.any():
            flips[int(rng.choice(np.flatnonzero(mutable)))] = True
        for choice, flip in zip(choices, flips, strict=True):
            if flip:
                values[choice.name] = choice.mutate(values[choice.name], rng)
        return self.architecture(values)

    def crossover(
        self, first: Architecture, second: Architecture, rng: np.random.Generator
    ) -> Architecture:
        """Uniform crossover: each choice's value comes from either parent."""
        a, b = first.as_dict(), second.as_dict()
        return self.architecture(
            {name: (a[name] if rng.random() < 0.5 else b[name]) for name in a}
        )

    # -- architecture <-> vector encoding ------------------------------------------------
    def cardinalities(self) -> tuple[int, ...]:
        """Number of options of each choice, in ``choices()`` order."""
        return tuple(len(choice.options()) for choice in self.choices())

    def encode(self, arch: Architecture) -> np.ndarray:
        """Integer vector: the index of each choice's value in its ``options()``.

        Positions follow ``choices()`` order (not the name order of ``Architecture.values``),
        so neighbouring options of an ordered choice get neighbouring codes.
        """
        return np.array([choice.index(arch[choice.name]) for choice in self.choices()],
                        dtype=np.int64)

    def decode(self, vector: Sequence[int] | np.ndarray) -> Architecture:
        """The architecture whose ``encode`` is ``vector``; out-of-range codes raise."""
        choices = list(self.choices())
        codes = [int(code) for code in np.asarray(vector).ravel()]
        if len(codes) != len(choices):
            raise SearchSpaceError(
                f"{self.name}: an encoding has {len(choices)} entries, got {len(codes)}"
            )
        values = {}
        for choice, code in zip(choices, codes, strict=True):
            options = choice.options()
            if not 0 <= code < len(options):
                raise SearchSpaceError(
                    f"{self.name}: code {code} of {choice.name} is outside 0..{len(options) - 1}"
                )
            values[choice.name] = options[code]
        return Architecture.from_dict(self.name, values)

    def one_hot(self, arch: Architecture) -> np.ndarray:
        """0/1 vector with one block per choice (for surrogate models)."""
        sizes = self.cardinalities()
        out = np.zeros(sum(sizes))
        offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(int)
        out[offsets + self.encode(arch)] = 1.0
        return out

    def size(self) -> int:
        """Number of distinct architectures."""
        total = 1
        for choice in self.choices():
            total *= len(choice.options())
        return total

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        return torch.randn(batch_size, *self.input_spec.shape)

    def validate(self, arch: Architecture) -> nn.Module:
        """Build ``arch`` and run a dry forward pass; return the model or raise naming why."""
        arch = self.architecture(arch.as_dict())
        try:
            model = self.build(arch)
        except SearchSpaceError:
            raise
        except Exception as error:
            raise SearchSpaceError(
                f"{self.name}: building architecture {arch.key} failed: {error}"
            ) from error
        if not isinstance(model, nn.Module):
            raise SearchSpaceError(
                f"{self.name}.build must return a torch.nn.Module, got {type(model).__name__}"
            )
        model.eval()
        try:
            with torch.no_grad():
                output = model(self.example_input(2))
        except Exception as error:
            raise SearchSpaceError(
                f"{self.name}: dry forward pass of {arch.key} failed: {error}"
            ) from error
        expected = (2, self.input_spec.num_classes)
        if not isinstance(output, torch.Tensor):
            raise SearchSpaceError(
                f"{self.name}: architecture {arch.key} outputs a {type(output).__name__}, "
                f"expected a tensor of shape {expected} (batch, num_classes)"
            )
        if tuple(output.shape) != expected:
            raise SearchSpaceError(
                f"{self.name}: architecture {arch.key} outputs shape {tuple(output.shape)}, "
                f"expected {expected} (batch, num_classes)"
            )
        return model
