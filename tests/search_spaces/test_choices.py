"""Choices: validation messages, sampling range, mutation and canonical values."""

from __future__ import annotations

import numpy as np
import pytest

from search_spaces import Categorical, IntRange, SearchSpaceError


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Categorical("", (1, 2)), "a choice needs a non-empty name"),
        (lambda: Categorical("act", ()), "act: a categorical choice needs at least one value"),
        (lambda: Categorical("act", ("relu", "relu")),
         r"act: values must be distinct, got \['relu', 'relu'\]"),
        (lambda: Categorical("act", ([1],)), r"act: values must be int, float, str or bool, got \[1\]"),
        (lambda: IntRange("", 0, 1), "a choice needs a non-empty name"),
        (lambda: IntRange("n", 0, 4, step=0), r"n: step must be >= 1, got 0"),
        (lambda: IntRange("n", 5, 1), r"n: high \(1\) < low \(5\)"),
        (lambda: IntRange("n", 0, 5, step=2), r"n: high - low \(5\) must be a multiple of step \(2\)"),
    ],
)
def test_invalid_choices_name_the_problem(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SearchSpaceError, match=message):
        make()


def test_validate_names_the_choice_and_the_allowed_values() -> None:
    act = Categorical("act", ("relu", "gelu"))
    assert act.validate("gelu") == "gelu"
    with pytest.raises(SearchSpaceError,
                       match=r"act: 'tanh' is not allowed; choose one of \['relu', 'gelu'\]"):
        act.validate("tanh")
    with pytest.raises(SearchSpaceError, match="not allowed"):
        Categorical("flag", (0, 1)).validate(True)  # True is not 1
    with pytest.raises(SearchSpaceError, match=r"n: 3 is not allowed; choose one of \[0, 2, 4\]"):
        IntRange("n", 0, 4, step=2).validate(3)


def test_validate_returns_the_canonical_option() -> None:
    value = Categorical("lr", (0.5, 1.0)).validate(1)  # YAML may write 1 for 1.0
    assert value == 1.0 and isinstance(value, float)


def test_sampling_stays_in_range_and_covers_it() -> None:
    rng = np.random.default_rng(0)
    for choice in (IntRange("n", 2, 10, step=2), Categorical("act", ("relu", "gelu", "silu"))):
        samples = {choice.sample(rng) for _ in range(300)}
        assert samples == set(choice.options())
    assert IntRange("n", 2, 10, step=2).options() == (2, 4, 6, 8, 10)


def test_categorical_mutation_always_changes_the_value() -> None:
    rng = np.random.default_rng(1)
    act = Categorical("act", ("relu", "gelu", "silu"))
    mutated = {act.mutate("relu", rng) for _ in range(100)}
    assert mutated == {"gelu", "silu"}
    assert Categorical("only", (3,)).mutate(3, rng) == 3


def test_int_range_mutation_moves_to_a_neighbour() -> None:
    rng = np.random.default_rng(2)
    n = IntRange("n", 0, 10, step=2)
    assert {n.mutate(4, rng) for _ in range(100)} == {2, 6}
    assert {n.mutate(0, rng) for _ in range(20)} == {2}
    assert {n.mutate(10, rng) for _ in range(20)} == {8}
    assert IntRange("one", 1, 1).mutate(1, rng) == 1
