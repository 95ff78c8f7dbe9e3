"""SearchSpace behaviour derived from its choices: validation, variation, size, dry run."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces import (
    Architecture,
    Categorical,
    Choice,
    InputSpec,
    IntRange,
    SearchSpace,
    SearchSpaceError,
)

SPEC = InputSpec((4,), 3)


class TinySpace(SearchSpace):
    """A linear classifier with a hidden width; subclasses break ``build`` on purpose."""

    name = "tiny"

    def choices(self) -> Sequence[Choice]:
        return [IntRange("hidden", 2, 8, step=2), Categorical("bias", (True, False)),
                Categorical("scale", (0.5, 1.0, 2.0)), Categorical("fixed", ("yes",))]

    def build(self, arch: Architecture) -> nn.Module:
        hidden = int(arch["hidden"])
        return nn.Sequential(nn.Linear(4, hidden, bias=bool(arch["bias"])), nn.Linear(hidden, 3))


class WrongShapeSpace(TinySpace):
    name = "wrong-shape"

    def build(self, arch: Architecture) -> nn.Module:
        return nn.Linear(4, 5)


class BuildFailsSpace(TinySpace):
    name = "build-fails"

    def build(self, arch: Architecture) -> nn.Module:
        raise RuntimeError("no such layer")


class ForwardFailsSpace(TinySpace):
    name = "forward-fails"

    def build(self, arch: Architecture) -> nn.Module:
        return nn.Linear(7, 3)


class NotAModuleSpace(TinySpace):
    name = "not-a-module"

    def build(self, arch: Architecture) -> nn.Module:
        return lambda x: x  # type: ignore[return-value]


class TupleOutput(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[:, :3], x


class TupleOutputSpace(TinySpace):
    name = "tuple-output"

    def build(self, arch: Architecture) -> nn.Module:
        return TupleOutput()


class DuplicateNamesSpace(TinySpace):
    def choices(self) -> Sequence[Choice]:
        return [IntRange("hidden", 2, 8), Categorical("hidden", (1, 2))]


SPACE = TinySpace(input_spec=SPEC)
VALUES = {"hidden": 4, "bias": True, "scale": 1.0, "fixed": "yes"}


def test_architecture_validates_values() -> None:
    assert SPACE.architecture(VALUES) == Architecture.from_dict("tiny", VALUES)
    assert SPACE.architecture({**VALUES, "scale": 1}).key == SPACE.architecture(VALUES).key
    with pytest.raises(SearchSpaceError, match=r"tiny: unknown choice\(s\) \['depth'\]; known: "
                                               r"\['bias', 'fixed', 'hidden', 'scale'\]"):
        SPACE.architecture({**VALUES, "depth": 2})
    with pytest.raises(SearchSpaceError, match=r"tiny: missing value\(s\) for \['bias', 'hidden'\]"):
        SPACE.architecture({"scale": 1.0, "fixed": "yes"})
    with pytest.raises(SearchSpaceError, match="hidden: 5 is not allowed"):
        SPACE.architecture({**VALUES, "hidden": 5})


def test_space_rejects_bad_setup() -> None:
    with pytest.raises(SearchSpaceError, match="choice name 'hidden' is used twice"):
        DuplicateNamesSpace(input_spec=SPEC)
    with pytest.raises(SearchSpaceError, match="input_spec must be an InputSpec"):
        TinySpace(input_spec=(4,))  # type: ignore[arg-type]
    with pytest.raises(SearchSpaceError, match="input shape must be positive sizes"):
        InputSpec((0, 8), 3)
    with pytest.raises(SearchSpaceError, match="num_classes must be >= 2, got 1"):
        InputSpec((4,), 1)


def test_samples_are_valid() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = SPACE.sample(rng)
        assert SPACE.architecture(arch.as_dict()) == arch


def test_mutation_changes_at_least_one_value() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):  # "fixed" has one option, so it can never be the one change
        parent = SPACE.sample(rng)
        child = SPACE.mutate(parent, rng)
        changed = [name for name in parent if parent[name] != child[name]]
        assert changed and "fixed" not in changed
        assert abs(int(child["hidden"]) - int(parent["hidden"])) in (0, 2)  # neighbours only


def test_mutation_rate() -> None:
    rng = np.random.default_rng(2)
    parent = SPACE.architecture(VALUES)
    child = SPACE.mutate(parent, rng, rate=1.0)
    assert all(child[name] != parent[name] for name in ("hidden", "bias", "scale"))
    with pytest.raises(SearchSpaceError, match=r"mutation rate must be in \[0, 1\], got 1.5"):
        SPACE.mutate(parent, rng, rate=1.5)


def test_crossover_takes_each_value_from_a_parent() -> None:
    rng = np.random.default_rng(3)
    first = SPACE.architecture(VALUES)
    second = SPACE.architecture({"hidden": 8, "bias": False, "scale": 2.0, "fixed": "yes"})
    children = [SPACE.crossover(first, second, rng) for _ in range(50)]
    for child in children:
        assert all(child[name] in (first[name], second[name]) for name in child)
    assert {child["hidden"] for child in children} == {4, 8}  # both parents contribute


def test_size_is_the_product_of_option_counts() -> None:
    assert SPACE.size() == 4 * 2 * 3 * 1 == math.prod(len(c.options()) for c in SPACE.choices())
    names = [choice.name for choice in SPACE.choices()]
    every = {SPACE.architecture(dict(zip(names, values, strict=True))).key
             for values in itertools.product(*(choice.options() for choice in SPACE.choices()))}
    assert len(every) == SPACE.size()


def test_validate_runs_a_dry_forward_pass() -> None:
    arch = SPACE.architecture(VALUES)
    assert isinstance(SPACE.validate(arch), nn.Module)


@pytest.mark.parametrize(
    ("space_class", "message"),
    [
        (WrongShapeSpace, r"wrong-shape: architecture \w+ outputs shape \(2, 5\), expected \(2, 3\)"),
        (BuildFailsSpace, r"build-fails: building architecture \w+ failed: no such layer"),
        (ForwardFailsSpace, r"forward-fails: dry forward pass of \w+ failed"),
        (NotAModuleSpace, "not-a-module.build must return a torch.nn.Module, got function"),
        (TupleOutputSpace, r"tuple-output: architecture \w+ outputs a tuple, expected a tensor"),
    ],
)
def test_validate_names_the_space_and_the_problem(space_class: type[SearchSpace], message: str) -> None:
    space = space_class(input_spec=SPEC)
    with pytest.raises(SearchSpaceError, match=message):
        space.validate(space.architecture(VALUES))
