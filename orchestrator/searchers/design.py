"""Initial designs: the first architectures a population-based searcher evaluates.

A space-filling start beats uniform samples at small budgets: a Latin-hypercube design
spreads every choice's options evenly over the first architectures, and "uniform"
architectures (one option on every choice that shares it, like a cell with the same
operation on every edge) anchor the extremes of cell-based spaces, whose fronts often
end in them. Both are built from the public encoding (``SearchSpace.encode``/``decode``).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from search_spaces import Architecture, SearchSpace

#: Latin hypercubes drawn to keep the most spread-out one (maximin Hamming distance).
CANDIDATE_DESIGNS = 16


def latin_hypercube(space: SearchSpace, rng: np.random.Generator, size: int) -> list[np.ndarray]:
    """The most spread-out of ``CANDIDATE_DESIGNS`` Latin hypercubes of ``size`` codes.

    Spread: the smallest, then the mean Hamming distance between two of its codes.
    """
    best, best_spread = None, (-1.0, -1.0)
    for _ in range(CANDIDATE_DESIGNS):
        codes = np.array(_latin_hypercube(space, rng, size))
        if size < 2:
            return list(codes)
        distances = (codes[:, None, :] != codes[None, :, :]).sum(axis=2)[np.triu_indices(size, 1)]
        spread = (float(distances.min()), float(distances.mean()))
        if spread > best_spread:
            best, best_spread = codes, spread
    return list(best) if best is not None else []


def _latin_hypercube(space: SearchSpace, rng: np.random.Generator, size: int) -> list[np.ndarray]:
    """``size`` codes in which every choice cycles through shuffled passes over its options."""
    columns = []
    for cardinality in space.cardinalities():
        passes = -(-size // cardinality)
        columns.append(np.concatenate([rng.permutation(cardinality) for _ in range(passes)])[:size])
    return [np.array([column[row] for column in columns]) for row in range(size)]


def uniform_architectures(space: SearchSpace, rng: np.random.Generator) -> list[np.ndarray]:
    """One code per option of the largest group of choices with identical options.

    The group's choices all take that option; the other choices come from a Latin
    hypercube. Empty when no two choices share their options (e.g. depth and width).
    """
    groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for position, choice in enumerate(space.choices()):
        groups[tuple(choice.options())].append(position)
    options, positions = max(groups.items(), key=lambda item: (len(item[1]), len(item[0])))
    if len(positions) < 2 or len(options) < 2:
        return []
    codes = latin_hypercube(space, rng, len(options))
    for option, code in enumerate(codes):
        code[positions] = option
    return codes


def initial_design(space: SearchSpace, rng: np.random.Generator, size: int) -> list[Architecture]:
    """Distinct architectures, uniform ones first, then a Latin hypercube (at most ``size``)."""
    design: dict[str, Architecture] = {}
    for code in [*uniform_architectures(space, rng), *latin_hypercube(space, rng, size)]:
        arch = space.decode(code)
        design.setdefault(arch.key, arch)
    return list(design.values())[:size]
