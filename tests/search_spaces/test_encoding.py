"""The architecture <-> vector encoding follows ``choices()`` order and round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from search_spaces import InputSpec, SearchSpaceError, create_space

CONV = create_space("conv-classifier", input_spec=InputSpec((1, 8, 8), 10))
MLP = create_space("mlp", input_spec=InputSpec((4,), 3))


@pytest.mark.parametrize("space", [CONV, MLP], ids=["conv", "mlp"])
def test_encode_decode_round_trip(space) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        codes = space.encode(arch)
        assert codes.shape == (len(space.choices()),)
        assert all(0 <= c < n for c, n in zip(codes, space.cardinalities(), strict=True))
        assert space.decode(codes) == arch
        one_hot = space.one_hot(arch)
        assert one_hot.sum() == len(space.choices()) and one_hot.size == sum(space.cardinalities())


def test_codes_follow_the_order_of_choices_and_options() -> None:
    # Architecture values are sorted by name; the encoding is in choices() order.
    names = [choice.name for choice in MLP.choices()]
    assert names == ["num_layers", "hidden_units", "activation"]
    arch = MLP.architecture({"num_layers": 3, "hidden_units": 32, "activation": "gelu"})
    assert MLP.encode(arch).tolist() == [2, 0, 1]
    assert MLP.decode([0, 3, 0]).as_dict() == {"num_layers": 1, "hidden_units": 256,
                                               "activation": "relu"}


def test_decode_refuses_bad_vectors() -> None:
    with pytest.raises(SearchSpaceError, match="an encoding has 3 entries, got 2"):
        MLP.decode([0, 0])
    with pytest.raises(SearchSpaceError, match="code 4 of hidden_units is outside 0..3"):
        MLP.decode([0, 4, 0])
