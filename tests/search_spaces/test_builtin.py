"""The built-in spaces build networks that run on small inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from search_spaces import InputSpec, SearchSpaceError, create_space


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 16, 12)])
def test_conv_classifier_runs_forward(shape: tuple[int, ...]) -> None:
    space = create_space("conv-classifier", input_spec=InputSpec(shape, 10))
    rng = np.random.default_rng(sum(shape))
    for _ in range(4):
        model = space.validate(space.sample(rng))
        with torch.no_grad():
            assert model(torch.randn(3, *shape)).shape == (3, 10)


def test_conv_classifier_size_and_choices() -> None:
    space = create_space("conv-classifier", input_spec=InputSpec((1, 8, 8), 10))
    assert space.size() == math.prod(len(c.options()) for c in space.choices()) == (3 * 4 * 2 * 3) ** 3
    small = create_space("conv-classifier", input_spec=InputSpec((1, 8, 8), 10),
                         options={"num_stages": 2, "depths": [1, 2], "widths": [8, 16]})
    assert small.size() == (2 * 2 * 2 * 3) ** 2
    assert [c.name for c in small.choices()][:4] == [
        "stage1.depth", "stage1.width", "stage1.kernel_size", "stage1.expansion"
    ]


def test_conv_classifier_deepest_and_widest_archs_build() -> None:
    space = create_space("conv-classifier", input_spec=InputSpec((1, 8, 8), 4),
                         options={"num_stages": 6})
    largest = space.architecture({c.name: c.options()[-1] for c in space.choices()})
    smallest = space.architecture({c.name: c.options()[0] for c in space.choices()})
    space.validate(largest)
    space.validate(smallest)


@pytest.mark.parametrize(
    ("options", "shape", "message"),
    [
        ({}, (64,), r"conv-classifier needs \(channels, height, width\) inputs"),
        ({"num_stages": 7}, (1, 8, 8), "num_stages must be in 1..6, got 7"),
        ({"kernel_sizes": [3, 4]}, (1, 8, 8), r"kernel_sizes must be odd, got \[3, 4\]"),
    ],
)
def test_conv_classifier_rejects_bad_options(options: dict[str, object], shape: tuple[int, ...],
                                             message: str) -> None:
    with pytest.raises(SearchSpaceError, match=message):
        create_space("conv-classifier", input_spec=InputSpec(shape, 10), options=options)


def test_mlp_runs_forward_on_flat_and_image_inputs() -> None:
    rng = np.random.default_rng(0)
    for shape in [(4,), (1, 8, 8)]:
        space = create_space("mlp", input_spec=InputSpec(shape, 3))
        assert space.size() == 3 * 4 * 2
        for _ in range(3):
            model = space.validate(space.sample(rng))
            with torch.no_grad():
                assert model(torch.randn(2, *shape)).shape == (2, 3)
