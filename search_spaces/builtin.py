"""Built-in spaces. Importing this module registers them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from search_spaces.base import Architecture, InputSpec, SearchSpace
from search_spaces.choices import Categorical, Choice, IntRange
from search_spaces.errors import SearchSpaceError
from search_spaces.loading import register_space


class InvertedResidual(nn.Module):
    """MobileNetV2-style block: 1x1 expand, depthwise kxk, 1x1 project; residual if shapes match."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, expansion: int,
                 stride: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                       nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, kernel_size, stride=stride, padding=kernel_size // 2,
                      groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


@register_space("conv-classifier")
class ConvClassifierSpace(SearchSpace):
    """A small image-classifier family: a stem, then stages of inverted-residual blocks.

    Per stage ``s`` (1-based): ``stage{s}.depth`` blocks, ``stage{s}.width`` output
    channels, ``stage{s}.kernel_size`` of the depthwise convolutions and
    ``stage{s}.expansion`` ratio. Every stage after the first halves the resolution
    while it is above 2 pixels, so the space fits 8x8 digits as well as 28x28 images.
    """

    def __init__(
        self,
        *,
        input_spec: InputSpec,
        num_stages: int = 3,
        depths: Sequence[int] = (1, 2, 3),
        widths: Sequence[int] = (8, 16, 24, 32),
        kernel_sizes: Sequence[int] = (3, 5),
        expansions: Sequence[int] = (1, 2, 4),
        stem_channels: int = 8,
    ) -> None:
        if len(input_spec.shape) != 3:
            raise SearchSpaceError(
                f"conv-classifier needs (channels, height, width) inputs, got {input_spec.shape}"
            )
        if not 1 <= num_stages <= 6:
            raise SearchSpaceError(f"num_stages must be in 1..6, got {num_stages}")
        if any(k % 2 == 0 for k in kernel_sizes):
            raise SearchSpaceError(f"kernel_sizes must be odd, got {list(kernel_sizes)}")
        self.num_stages = num_stages
        self.stem_channels = stem_channels
        self._choices: list[Choice] = []
        for stage in range(1, num_stages + 1):
            self._choices += [
                Categorical(f"stage{stage}.depth", tuple(depths)),
                Categorical(f"stage{stage}.width", tuple(widths)),
                Categorical(f"stage{stage}.kernel_size", tuple(kernel_sizes)),
                Categorical(f"stage{stage}.expansion", tuple(expansions)),
            ]
        super().__init__(input_spec=input_spec)

    def choices(self) -> Sequence[Choice]:
        return self._choices

    def build(self, arch: Architecture) -> nn.Module:
        channels, height, width = self.input_spec.shape
        layers: list[nn.Module] = [
            nn.Conv2d(channels, self.stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(self.stem_channels),
            nn.ReLU6(inplace=True),
        ]
        in_channels, resolution = self.stem_channels, min(height, width)
        for stage in range(1, self.num_stages + 1):
            out_channels = int(arch[f"stage{stage}.width"])
            for block in range(int(arch[f"stage{stage}.depth"])):
                stride = 2 if block == 0 and stage > 1 and resolution > 2 else 1
                resolution = (resolution + 1) // 2 if stride == 2 else resolution
                layers.append(InvertedResidual(
                    in_channels, out_channels, stride=stride,
                    kernel_size=int(arch[f"stage{stage}.kernel_size"]),
                    expansion=int(arch[f"stage{stage}.expansion"]),
                ))
                in_channels = out_channels
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   nn.Linear(in_channels, self.input_spec.num_classes)]
        return nn.Sequential(*layers)


@register_space("mlp")
class MLPSpace(SearchSpace):
    """A fully connected classifier: ``num_layers`` hidden layers of ``hidden_units`` each."""

    def __init__(self, *, input_spec: InputSpec, max_layers: int = 3,
                 hidden_units: Sequence[int] = (32, 64, 128, 256)) -> None:
        self._choices: list[Choice] = [
            IntRange("num_layers", 1, max_layers),
            Categorical("hidden_units", tuple(hidden_units)),
            Categorical("activation", ("relu", "gelu")),
        ]
        super().__init__(input_spec=input_spec)

    def choices(self) -> Sequence[Choice]:
        return self._choices

    def build(self, arch: Architecture) -> nn.Module:
        features = 1
        for size in self.input_spec.shape:
            features *= size
        units = int(arch["hidden_units"])
        activation = nn.ReLU if arch["activation"] == "relu" else nn.GELU
        layers: list[nn.Module] = [nn.Flatten()]
        for _ in range(int(arch["num_layers"])):
            layers += [nn.Linear(features, units), activation()]
            features = units
        layers.append(nn.Linear(features, self.input_spec.num_classes))
        return nn.Sequential(*layers)


# The elastic (weight-sharing) space and NAS-Bench-201's cell space live in their own
# modules; importing them here registers them with the others.
import search_spaces.mobilenet_v3  # noqa: E402, F401
import search_spaces.nb201  # noqa: E402, F401
