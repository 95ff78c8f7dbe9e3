"""Pareto logic on known fronts: dominance, sorting, crowding, exact hypervolume."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from orchestrator.pareto import (
    crowding_distance,
    dominates,
    hypervolume,
    non_dominated_sort,
    pareto_front_indices,
)

# Four points on x + y = 1, then two dominated ones.
LINE = np.array([[0.0, 1.0], [0.25, 0.75], [0.5, 0.5], [1.0, 0.0], [0.5, 0.75], [1.0, 1.0]])


def _fronts(points: np.ndarray, violations: np.ndarray | None = None) -> list[list[int]]:
    return [front.tolist() for front in non_dominated_sort(points, violations)]


def _inclusion_exclusion(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume of a handful of points, independently of ``hypervolume``."""
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(points, size):
            corner = np.max(subset, axis=0)
            total += (-1) ** (size + 1) * np.prod(np.clip(reference - corner, 0, None))
    return float(total)


def test_dominates() -> None:
    assert dominates([0, 1], [1, 1])
    assert not dominates([1, 1], [0, 1])
    assert not dominates([0, 1], [1, 0])
    assert not dominates([1, 1], [1, 1])  # equal points do not dominate each other
    assert dominates([1, 1, 0], [1, 1, 1])


def test_two_dimensional_fronts() -> None:
    assert _fronts(LINE) == [[0, 1, 2, 3], [4], [5]]
    assert pareto_front_indices(LINE).tolist() == [0, 1, 2, 3]


def test_three_dimensional_fronts_and_duplicates() -> None:
    points = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [1, 0, 0], [2, 2, 2]])
    assert _fronts(points) == [[0, 1, 2, 4], [3], [5]]  # the duplicate shares the front


def test_constrained_sort_prefers_feasible_then_smaller_violation() -> None:
    violations = np.array([0.5, 0.0, 2.0, 0.0, 0.0, 0.5])
    # Feasible 1, 3, 4: 4 is dominated by 1. Infeasible: 0 and 5 (0.5) before 2 (2.0).
    assert _fronts(LINE, violations) == [[1, 3], [4], [0, 5], [2]]
    assert pareto_front_indices(LINE, violations).tolist() == [1, 3]
    assert _fronts(LINE, np.zeros(len(LINE))) == _fronts(LINE)


def test_sort_is_invariant_to_point_order() -> None:
    rng = np.random.default_rng(3)
    points = rng.integers(0, 5, size=(40, 3)).astype(float)
    order = rng.permutation(len(points))
    fronts = non_dominated_sort(points)
    permuted = non_dominated_sort(points[order])
    assert [sorted(order[front].tolist()) for front in permuted] == [f.tolist() for f in fronts]
    assert sum(len(front) for front in fronts) == len(points)


def test_empty_input() -> None:
    assert non_dominated_sort(np.empty((0, 2))) == []
    assert pareto_front_indices(np.empty((0, 2))).tolist() == []
    assert hypervolume(np.empty((0, 2)), [1, 1]) == 0.0


def test_crowding_distance_on_a_line() -> None:
    distance = crowding_distance(LINE[:4])
    assert np.isinf(distance[[0, 3]]).all()
    assert distance[1] == pytest.approx(0.5 + 0.5)
    assert distance[2] == pytest.approx(0.75 + 0.75)


def test_crowding_distance_with_zero_range_and_few_points() -> None:
    flat = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    distance = crowding_distance(flat)
    assert np.isinf(distance[[0, 2]]).all() and distance[1] == pytest.approx(1.0)
    assert crowding_distance(np.ones((3, 2))).tolist() == [0.0, 0.0, 0.0]  # no arbitrary extremes
    assert np.isinf(crowding_distance(flat[:2])).all()


def test_hypervolume_one_dimension() -> None:
    assert hypervolume([[3.0], [1.0], [2.0]], [4.0]) == pytest.approx(3.0)


def test_hypervolume_two_dimensional_staircase() -> None:
    staircase = [[1, 3], [2, 2], [3, 1]]
    assert hypervolume(staircase, [4, 4]) == pytest.approx(3 + 2 + 1)
    ignored = [[3, 3], [2, 2], [5, 0], [4, 0.5]]  # dominated, beyond and on the reference
    assert hypervolume(staircase + ignored, [4, 4]) == pytest.approx(6)


def test_hypervolume_three_dimensional_unit_cubes() -> None:
    assert hypervolume([[1, 1, 1]], [2, 2, 2]) == pytest.approx(1)
    # Three 2x1x1 boxes: 3 * 2 - 3 pairwise overlaps of 1 + the common unit cube.
    assert hypervolume([[0, 1, 1], [1, 0, 1], [1, 1, 0]], [2, 2, 2]) == pytest.approx(4)


@pytest.mark.parametrize("m", [3, 4, 5])
def test_hypervolume_matches_inclusion_exclusion(m: int) -> None:
    rng = np.random.default_rng(m)
    points = rng.random((9, m))
    reference = np.full(m, 1.0)
    assert hypervolume(points, reference) == pytest.approx(_inclusion_exclusion(points, reference))


def test_hypervolume_is_consistent_across_dimensions() -> None:
    rng = np.random.default_rng(0)
    points = rng.random((30, 3))
    flat = hypervolume(points, [1, 1, 1])
    padded = np.column_stack([points, np.zeros(len(points))])
    assert hypervolume(padded, [1, 1, 1, 2]) == pytest.approx(2 * flat)
    assert hypervolume(np.column_stack([points[:, :2], np.zeros(30)]), [1, 1, 1]) == pytest.approx(
        hypervolume(points[:, :2], [1, 1])
    )


def test_hypervolume_against_monte_carlo_in_four_dimensions() -> None:
    rng = np.random.default_rng(42)
    points = rng.random((25, 4)) * 0.8 + 0.1
    samples = rng.random((200_000, 4))
    covered = np.zeros(len(samples), dtype=bool)
    for point in points:
        covered |= np.all(samples >= point, axis=1)
    assert hypervolume(points, np.ones(4)) == pytest.approx(covered.mean(), abs=0.01)


def test_hypervolume_is_invariant_to_point_order() -> None:
    rng = np.random.default_rng(7)
    for m in (2, 3, 4):
        points = rng.random((40, m))
        reference = np.full(m, 1.1)
        assert hypervolume(points[rng.permutation(40)], reference) == pytest.approx(
            hypervolume(points, reference)
        )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: non_dominated_sort([[0.0, np.nan]]), "NaN or infinite"),
        (lambda: hypervolume([[0.0, np.inf]], [1, 1]), "NaN or infinite"),
        (lambda: hypervolume([[0.0, 0.0]], [1.0, np.nan]), "reference contains NaN"),
        (lambda: hypervolume([[0.0, 0.0]], [1.0, 1.0, 1.0]), "reference has 3 objectives"),
        (lambda: crowding_distance([0.0, 1.0]), r"must be an \(n, m\) array"),
        (lambda: dominates([0, 1], [0, 1, 2]), "same length"),
        (lambda: non_dominated_sort(LINE, [0.0, 1.0]), r"violations must have shape \(6,\)"),
        (lambda: non_dominated_sort(LINE, -np.ones(6)), "finite and >= 0"),
    ],
)
def test_bad_inputs_raise_value_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_noise_aware_sort_ties_overlapping_intervals() -> None:
    import numpy as np

    from orchestrator.pareto import dominates_within, non_dominated_sort

    points = np.array([[1.0, 1.00], [1.0, 1.02], [2.0, 3.0]])
    low, high = points.copy(), points.copy()
    low[:, 1] -= 0.05
    high[:, 1] += 0.05
    assert [f.tolist() for f in non_dominated_sort(points)] == [[0], [1], [2]]
    assert [f.tolist() for f in non_dominated_sort(points, intervals=(low, high))] == [[0, 1], [2]]
    assert not dominates_within(low[0], high[0], low[1], high[1])
    assert dominates_within(low[0], high[0], low[2], high[2])
    with pytest.raises(ValueError, match="intervals must contain their points"):
        non_dominated_sort(points, intervals=(high, low))
