"""Elastic spaces: dynamic ops slice the largest weights; extraction copies them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces import Architecture, InputSpec, SearchSpaceError, create_space
from search_spaces.elastic import DynamicBatchNorm2d, DynamicConv2d, DynamicLinear, Supernet
from search_spaces.mobilenet_v3 import ElasticMobileNetV3Space
from tests.elastic_fixtures import DIGITS, one_thread, tiny_space

_one_thread = pytest.fixture(autouse=True)(one_thread)


def _randomise_batch_norm(net: nn.Module, seed: int) -> None:
    """Non-trivial running statistics and affine weights, so slicing mistakes show."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            for tensor in (module.running_mean, module.weight, module.bias):
                tensor.data.copy_(torch.randn(tensor.shape, generator=generator) * 0.3)
            module.running_var.data.copy_(torch.rand(module.running_var.shape,
                                                     generator=generator) + 0.5)


@pytest.fixture
def space() -> ElasticMobileNetV3Space:
    return tiny_space()


def test_extracted_subnet_equals_the_supernets_active_path(space: ElasticMobileNetV3Space) -> None:
    torch.manual_seed(0)
    supernet = space.supernet().eval()
    _randomise_batch_norm(supernet, 0)
    x = torch.randn(5, *DIGITS.shape)
    rng = np.random.default_rng(0)
    archs = [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(6))]
    outputs = set()
    for arch in archs:
        model = supernet.extract(arch)
        assert not any(isinstance(m, Supernet | DynamicConv2d) for m in model.modules())
        with torch.no_grad():
            expected = supernet(x, arch)
            with supernet.active(arch):
                active = supernet(x)
            actual = model(x)
        torch.testing.assert_close(active, expected)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
        outputs.add(round(float(expected.sum()), 4))
    assert len(outputs) > 1  # the subnets really differ


def test_sorting_channels_keeps_the_largest_subnet_and_ranks_channels_first(
        space: ElasticMobileNetV3Space) -> None:
    torch.manual_seed(0)
    supernet = space.supernet().eval()
    _randomise_batch_norm(supernet, 1)
    x = torch.randn(5, *DIGITS.shape)
    with torch.no_grad():
        largest, smallest = supernet(x, space.largest()), supernet(x, space.smallest())
    moved = supernet.sort_channels()

    parameters = {id(p) for p in supernet.parameters()}
    assert moved and all(id(tensor) in parameters for tensor, _, _ in moved)
    assert any(not torch.equal(index, torch.arange(len(index))) for _, index, _ in moved)
    with torch.no_grad():
        torch.testing.assert_close(supernet(x, space.largest()), largest, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(supernet(x, space.smallest()), smallest, atol=1e-4)
    for module in supernet.modules():
        if hasattr(module, "sort_hidden"):  # every block: most important hidden channel first
            importance = module.project.conv.weight.abs().sum(dim=(0, 2, 3))
            assert torch.all(importance[:-1] >= importance[1:])


def test_extraction_copies_the_weights(space: ElasticMobileNetV3Space) -> None:
    supernet = space.supernet().eval()
    model = supernet.extract(space.largest())
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    x = torch.randn(2, *DIGITS.shape)
    with torch.no_grad():
        assert not torch.allclose(model(x), supernet(x, space.largest()))


def test_subnet_sizes_follow_the_choices(space: ElasticMobileNetV3Space) -> None:
    supernet = space.supernet()
    params = [sum(p.numel() for p in supernet.extract(a).parameters())
              for a in (space.smallest(), space.largest())]
    assert params[0] < params[1] == sum(p.numel() for p in supernet.parameters())


def test_out_of_range_subnet_names_the_dimension(space: ElasticMobileNetV3Space) -> None:
    values = space.largest().as_dict()
    values["stage2.block1.kernel_size"] = 7
    with pytest.raises(SearchSpaceError, match=r"stage2\.block1\.kernel_size: 7 is not allowed"):
        space.architecture(values)
    outside = Architecture.from_dict(space.name, values)  # built without validation
    supernet = space.supernet()
    with pytest.raises(SearchSpaceError, match=r"stage2\.block1\.kernel_size"):
        supernet(torch.randn(1, *DIGITS.shape), outside)
    with pytest.raises(SearchSpaceError, match=r"stage2\.block1\.kernel_size"):
        supernet.extract(outside)
    with pytest.raises(SearchSpaceError, match="width_multiplier: 2.0 is not allowed"):
        space.architecture({**space.largest().as_dict(), "width_multiplier": 2.0})


def test_the_active_subnet_is_scoped(space: ElasticMobileNetV3Space) -> None:
    supernet = space.supernet().eval()
    x = torch.randn(1, *DIGITS.shape)
    with pytest.raises(SearchSpaceError, match="no subnet given"):
        supernet(x)
    with pytest.raises(RuntimeError), supernet.active(space.smallest()):
        raise RuntimeError("leaves the block")
    with pytest.raises(SearchSpaceError, match="no subnet given"):
        supernet(x)
    other = tiny_space().supernet()
    with supernet.active(space.smallest()), pytest.raises(SearchSpaceError):
        other(x)  # another instance is not affected


def test_an_elastic_space_is_a_search_space(space: ElasticMobileNetV3Space) -> None:
    rng = np.random.default_rng(1)
    arch = space.sample(rng)
    model = space.validate(arch)
    assert isinstance(model, nn.Sequential)
    assert space.mutate(arch, rng) != arch
    assert space.largest()["stage1.depth"] == 2 and space.smallest()["width_multiplier"] == 0.5
    registered = create_space("elastic-mobilenet-v3", input_spec=InputSpec((1, 28, 28), 10))
    assert registered.name == "elastic-mobilenet-v3"
    registered.validate(registered.smallest())


@pytest.mark.parametrize("options, message", [
    ({"kernel_sizes": [3, 4]}, "kernel_sizes must be odd"),
    ({"strides": [1, 3]}, "strides must be in"),
    ({"widths": [4]}, "one entry per stage"),
    ({"activations": ["relu", "gelu"]}, "unknown activation"),
    ({"width_multipliers": [0.0]}, "width_multipliers"),
])
def test_bad_space_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(SearchSpaceError, match=message):
        tiny_space(**options)


def test_dynamic_ops_refuse_sizes_beyond_their_largest() -> None:
    with pytest.raises(SearchSpaceError, match="out_features 9 is outside the elastic range 1..8"):
        DynamicLinear(4, 8)(torch.randn(1, 4), 9)
    with pytest.raises(SearchSpaceError, match="kernel_size 5 is outside"):
        DynamicConv2d(2, 2, max_kernel_size=3).static(2, kernel_size=5)
    with pytest.raises(SearchSpaceError, match="channels 6 is outside"):
        DynamicBatchNorm2d(4)(torch.randn(2, 6, 3, 3))
