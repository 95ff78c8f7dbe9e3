"""A tiny elastic MobileNetV3 space on 8x8 digits, shared by the weight-sharing tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from search_spaces import InputSpec
from search_spaces.mobilenet_v3 import ElasticMobileNetV3Space

DIGITS = InputSpec(shape=(1, 8, 8), num_classes=10)

TINY_OPTIONS: dict[str, Any] = {
    "widths": [4, 8], "strides": [1, 2], "squeeze_excite": [False, True],
    "activations": ["relu", "hswish"], "depths": [1, 2], "kernel_sizes": [3, 5],
    "expansions": [1, 2], "width_multipliers": [0.5, 1.0], "stem_channels": 4,
    "stem_stride": 1, "head_channels": 16,
}


def tiny_space(**overrides: Any) -> ElasticMobileNetV3Space:
    return ElasticMobileNetV3Space(input_spec=DIGITS, **{**TINY_OPTIONS, **overrides})


def one_thread() -> Iterator[None]:
    """Torch on one thread: tiny nets run far faster than with contended OpenMP threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
