"""The NAS-Bench-201 cell space builds the benchmark's networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search_spaces import InputSpec, SearchSpaceError, create_space
from search_spaces.nb201 import EDGES, OPERATIONS


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_space_has_six_edges_of_five_operations() -> None:
    space = create_space("nb201", input_spec=InputSpec((3, 32, 32), 10))
    assert space.size() == 5**6 == 15_625
    assert [c.name for c in space.choices()] == [f"edge{t}<-{s}" for t, s in EDGES]
    assert all(c.options() == OPERATIONS for c in space.choices())


@pytest.mark.parametrize(("code", "millions"), [("333333", 1.531546), ("000000", 0.073306),
                                                ("222222", 0.241306)])
def test_parameter_counts_match_the_published_table(code: str, millions: float) -> None:
    """NAS-Bench-201's model_size column (CIFAR-10) counts these parameters."""
    space = create_space("nb201", input_spec=InputSpec((3, 32, 32), 10))
    model = space.build(space.decode([int(c) for c in code]))
    assert _params(model) / 1e6 == pytest.approx(millions, abs=1e-6)


def test_small_variant_trains_a_step_on_digits_sized_input() -> None:
    space = create_space("nb201", input_spec=InputSpec((1, 8, 8), 10),
                         options={"channels": 4, "cells_per_stage": 1})
    rng = np.random.default_rng(0)
    model = space.validate(space.sample(rng))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 1, 8, 8)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    optimiser.step()
    assert torch.isfinite(loss)


def test_an_output_without_a_path_is_zero() -> None:
    space = create_space("nb201", input_spec=InputSpec((3, 8, 8), 10),
                         options={"channels": 4, "cells_per_stage": 1})
    cell_only_conv_into_dead_node = space.decode([0, 0, 0, 0, 0, 3])  # node 2 is all "none"
    model = space.validate(cell_only_conv_into_dead_node)
    assert model is not None


def test_bad_options_are_refused() -> None:
    with pytest.raises(SearchSpaceError, match="channels must be an integer >= 1"):
        create_space("nb201", input_spec=InputSpec((3, 8, 8), 10), options={"channels": 0})
    with pytest.raises(SearchSpaceError, match=r"needs \(channels, height, width\)"):
        create_space("nb201", input_spec=InputSpec((64,), 10))
