"""The built-in elastic space: MobileNetV3-style inverted-residual blocks.

Each stage has an elastic depth (its first ``depth`` blocks run); each block an
elastic depthwise kernel size and expansion ratio; the whole net an elastic width
multiplier on the stage widths. Blocks may carry squeeze-excite and use hardswish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from search_spaces.base import Architecture, InputSpec
from search_spaces.choices import Categorical, Choice
from search_spaces.elastic import (
    DynamicBatchNorm2d,
    DynamicConv2d,
    DynamicLinear,
    ElasticSpace,
    Permutation,
    Supernet,
    permute_,
)
from search_spaces.errors import SearchSpaceError
from search_spaces.loading import register_space

ACTIVATIONS = ("relu", "hswish")


def _activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.Hardswish()


@dataclass(frozen=True)
class StageSpec:
    """One stage: base output width (before the multiplier), first-block stride, SE, activation."""

    width: int
    stride: int
    squeeze_excite: bool
    activation: str


# -- static modules: what extraction returns --------------------------------------------
class SqueezeExcite(nn.Module):
    """``x * hardsigmoid(expand(relu(reduce(avgpool(x)))))``."""

    def __init__(self, reduce: nn.Conv2d, expand: nn.Conv2d) -> None:
        super().__init__()
        self.reduce, self.expand = reduce, expand

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = nn.functional.adaptive_avg_pool2d(x, 1)
        scale = nn.functional.hardsigmoid(self.expand(nn.functional.relu(self.reduce(scale))))
        return x * scale


class MBBlock(nn.Module):
    """Expand 1x1, depthwise kxk, optional squeeze-excite, project 1x1; residual if set."""

    def __init__(self, expand: nn.Module, depthwise: nn.Module, squeeze_excite: nn.Module | None,
                 project: nn.Module, *, residual: bool) -> None:
        super().__init__()
        self.expand, self.depthwise, self.project = expand, depthwise, project
        self.squeeze_excite = squeeze_excite if squeeze_excite is not None else nn.Identity()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.squeeze_excite(self.depthwise(self.expand(x))))
        return x + out if self.residual else out


# -- dynamic modules: the supernet's parts -----------------------------------------------
class DynamicSqueezeExcite(nn.Module):
    def __init__(self, max_channels: int) -> None:
        super().__init__()
        self.max_mid = max(1, max_channels // 4)
        self.reduce = DynamicConv2d(max_channels, self.max_mid, bias=True)
        self.expand = DynamicConv2d(self.max_mid, max_channels, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        scale = nn.functional.adaptive_avg_pool2d(x, 1)
        scale = nn.functional.relu(self.reduce(scale, max(1, channels // 4)))
        return x * nn.functional.hardsigmoid(self.expand(scale, channels))

    def static(self, channels: int) -> SqueezeExcite:
        mid = max(1, channels // 4)
        return SqueezeExcite(self.reduce.static(channels, mid), self.expand.static(mid, channels))


class ElasticBlock(nn.Module):
    """An inverted-residual block with elastic kernel size and expansion ratio."""

    def __init__(self, max_in: int, max_out: int, *, max_kernel_size: int, max_expansion: int,
                 stride: int, stage: StageSpec, residual: bool) -> None:
        super().__init__()
        hidden = max_in * max_expansion
        self.activation, self.residual = stage.activation, residual
        self.expand = DynamicConv2d(max_in, hidden)
        self.expand_bn = DynamicBatchNorm2d(hidden)
        self.depthwise = DynamicConv2d(hidden, hidden, max_kernel_size=max_kernel_size,
                                       stride=stride, depthwise=True)
        self.depthwise_bn = DynamicBatchNorm2d(hidden)
        self.squeeze_excite = DynamicSqueezeExcite(hidden) if stage.squeeze_excite else None
        self.project = DynamicConv2d(hidden, max_out)
        self.project_bn = DynamicBatchNorm2d(max_out)
        self.act = _activation(stage.activation)

    def forward(self, x: torch.Tensor, *, out_channels: int, kernel_size: int, expansion: int
                ) -> torch.Tensor:
        h = self.act(self.expand_bn(self.expand(x, x.shape[1] * expansion)))
        h = self.act(self.depthwise_bn(self.depthwise(h, kernel_size=kernel_size)))
        if self.squeeze_excite is not None:
            h = self.squeeze_excite(h)
        h = self.project_bn(self.project(h, out_channels))
        return x + h if self.residual else h

    def sort_hidden(self) -> list[Permutation]:
        """Order the expanded (hidden) channels by the L1 norm of the projection weights
        that read them, largest first: every expansion ratio then keeps the most
        important ones. The block computes the same function at full size."""
        importance = self.project.conv.weight.detach().abs().sum(dim=(0, 2, 3))
        index = torch.argsort(importance, descending=True, stable=True)
        moved: list[Permutation] = [(self.project.conv.weight, index, 1),
                                    (self.expand.conv.weight, index, 0),
                                    (self.depthwise.conv.weight, index, 0)]
        for norm in (self.expand_bn.bn, self.depthwise_bn.bn):
            moved += [(norm.weight, index, 0), (norm.bias, index, 0)]
            assert norm.running_mean is not None and norm.running_var is not None
            permute_(norm.running_mean, index, 0)
            permute_(norm.running_var, index, 0)
        if self.squeeze_excite is not None:
            se = self.squeeze_excite
            assert se.expand.conv.bias is not None
            moved += [(se.reduce.conv.weight, index, 1), (se.expand.conv.weight, index, 0),
                      (se.expand.conv.bias, index, 0)]
        for parameter, order, dim in moved:
            permute_(parameter, order, dim)
        return moved

    def static(self, in_channels: int, *, out_channels: int, kernel_size: int, expansion: int
               ) -> MBBlock:
        hidden = in_channels * expansion
        return MBBlock(
            nn.Sequential(self.expand.static(in_channels, hidden), self.expand_bn.static(hidden),
                          _activation(self.activation)),
            nn.Sequential(self.depthwise.static(hidden, kernel_size=kernel_size),
                          self.depthwise_bn.static(hidden), _activation(self.activation)),
            self.squeeze_excite.static(hidden) if self.squeeze_excite is not None else None,
            nn.Sequential(self.project.static(hidden, out_channels),
                          self.project_bn.static(out_channels)),
            residual=self.residual,
        )


class MobileNetV3Supernet(Supernet):
    """Stem, elastic stages, a 1x1 head convolution and the classifier."""

    def __init__(self, space: ElasticMobileNetV3Space) -> None:
        super().__init__(space)
        self.plan = space
        channels = space.input_spec.shape[0]
        self.stem = DynamicConv2d(channels, space.stem_channels, max_kernel_size=3,
                                  stride=space.stem_stride)
        self.stem_bn = DynamicBatchNorm2d(space.stem_channels)
        self.stages = nn.ModuleList()
        in_channels = space.stem_channels
        for stage in space.stages:
            out_channels = space.scaled(stage.width, max(space.width_multipliers))
            blocks = nn.ModuleList()
            for index in range(max(space.depths)):
                blocks.append(ElasticBlock(
                    in_channels, out_channels, max_kernel_size=max(space.kernel_sizes),
                    max_expansion=max(space.expansions), stage=stage,
                    stride=stage.stride if index == 0 else 1, residual=index > 0,
                ))
                in_channels = out_channels
            self.stages.append(blocks)
        self.head = DynamicConv2d(in_channels, space.head_channels)
        self.head_bn = DynamicBatchNorm2d(space.head_channels)
        self.classifier = DynamicLinear(space.head_channels, space.input_spec.num_classes)

    def forward_subnet(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        x = nn.functional.hardswish(self.stem_bn(self.stem(x)))
        for blocks, settings in zip(self.stages, self.plan.block_settings(arch), strict=True):
            for block, kwargs in zip(cast(nn.ModuleList, blocks), settings, strict=False):
                x = block(x, **kwargs)
        x = nn.functional.hardswish(self.head_bn(self.head(x)))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    def sort_channels(self) -> list[Permutation]:
        """Each block's hidden channels by importance (the stage widths stay as they are)."""
        return [moved for blocks in self.stages for block in cast(list[ElasticBlock], blocks)
                for moved in block.sort_hidden()]

    def extract_subnet(self, arch: Architecture) -> nn.Module:
        layers: list[nn.Module] = [self.stem.static(self.stem.max_in_channels),
                                   self.stem_bn.static(self.stem.max_out_channels), nn.Hardswish()]
        in_channels = self.stem.max_out_channels
        for blocks, settings in zip(self.stages, self.plan.block_settings(arch), strict=True):
            for block, kwargs in zip(cast(list[ElasticBlock], blocks), settings, strict=False):
                layers.append(block.static(in_channels, **kwargs))
                in_channels = kwargs["out_channels"]
        layers += [self.head.static(in_channels), self.head_bn.static(self.head.max_out_channels),
                   nn.Hardswish(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   self.classifier.static(self.head.max_out_channels)]
        return nn.Sequential(*layers)


@register_space("elastic-mobilenet-v3")
class ElasticMobileNetV3Space(ElasticSpace):
    """MobileNetV3-style elastic space for (channels, height, width) images.

    Choices: ``width_multiplier``; per stage ``s`` (1-based) ``stage{s}.depth``; per block
    ``b`` ``stage{s}.block{b}.kernel_size`` and ``stage{s}.block{b}.expansion`` (blocks
    beyond the depth are unused). Stage ``s`` outputs ``round(widths[s-1] * multiplier)``
    channels; the first block of a stage applies its stride, the others are residual.
    """

    def __init__(
        self,
        *,
        input_spec: InputSpec,
        widths: Sequence[int] = (8, 16, 24, 32),
        strides: Sequence[int] = (1, 2, 2, 1),
        squeeze_excite: Sequence[bool] = (False, True, True, True),
        activations: Sequence[str] = ("relu", "relu", "hswish", "hswish"),
        depths: Sequence[int] = (1, 2, 3),
        kernel_sizes: Sequence[int] = (3, 5, 7),
        expansions: Sequence[int] = (2, 3, 4),
        width_multipliers: Sequence[float] = (0.5, 0.75, 1.0),
        stem_channels: int = 16,
        stem_stride: int = 2,
        head_channels: int = 64,
    ) -> None:
        if len(input_spec.shape) != 3:
            raise SearchSpaceError(f"elastic-mobilenet-v3 needs (channels, height, width) inputs, "
                                   f"got {input_spec.shape}")
        lengths = {len(widths), len(strides), len(squeeze_excite), len(activations)}
        if len(lengths) != 1 or not widths:
            raise SearchSpaceError("widths, strides, squeeze_excite and activations must have one "
                                   "entry per stage (and at least one stage)")
        for name, values, allowed in (("depths", depths, None), ("kernel_sizes", kernel_sizes, None),
                                      ("expansions", expansions, None), ("strides", strides, (1, 2))):
            if not values or any(not isinstance(v, int) or v < 1 for v in values):
                raise SearchSpaceError(f"{name} must be positive integers, got {list(values)}")
            if allowed and any(v not in allowed for v in values):
                raise SearchSpaceError(f"{name} must be in {allowed}, got {list(values)}")
        if any(k % 2 == 0 for k in kernel_sizes):
            raise SearchSpaceError(f"kernel_sizes must be odd, got {list(kernel_sizes)}")
        if not width_multipliers or any(not 0 < m <= 4 for m in width_multipliers):
            raise SearchSpaceError(f"width_multipliers must be in (0, 4], got {list(width_multipliers)}")
        unknown = sorted(set(activations) - set(ACTIVATIONS))
        if unknown:
            raise SearchSpaceError(f"unknown activation(s) {unknown}; known: {list(ACTIVATIONS)}")
        if min(stem_channels, head_channels, *widths) < 1 or stem_stride not in (1, 2):
            raise SearchSpaceError("stem_channels, head_channels and widths must be >= 1 and "
                                   "stem_stride 1 or 2")
        self.stages = tuple(StageSpec(int(w), int(s), bool(e), str(a))
                            for w, s, e, a in zip(widths, strides, squeeze_excite, activations,
                                                  strict=True))
        self.depths, self.kernel_sizes = tuple(depths), tuple(kernel_sizes)
        self.expansions = tuple(expansions)
        self.width_multipliers = tuple(float(m) for m in width_multipliers)
        self.stem_channels, self.stem_stride = int(stem_channels), int(stem_stride)
        self.head_channels = int(head_channels)
        self._choices: list[Choice] = [Categorical("width_multiplier", self.width_multipliers)]
        for s in range(1, len(self.stages) + 1):
            self._choices.append(Categorical(f"stage{s}.depth", self.depths))
            for b in range(1, max(self.depths) + 1):
                self._choices += [Categorical(f"stage{s}.block{b}.kernel_size", self.kernel_sizes),
                                  Categorical(f"stage{s}.block{b}.expansion", self.expansions)]
        super().__init__(input_spec=input_spec)

    def choices(self) -> Sequence[Choice]:
        return self._choices

    def supernet(self) -> MobileNetV3Supernet:
        return MobileNetV3Supernet(self)

    @staticmethod
    def scaled(width: int, multiplier: float) -> int:
        return max(1, round(width * multiplier))

    def block_settings(self, arch: Architecture) -> list[list[dict[str, int]]]:
        """Per stage, the keyword arguments of its active blocks."""
        multiplier = float(arch["width_multiplier"])
        plan = []
        for s, stage in enumerate(self.stages, start=1):
            out_channels = self.scaled(stage.width, multiplier)
            plan.append([
                {"out_channels": out_channels,
                 "kernel_size": int(arch[f"stage{s}.block{b}.kernel_size"]),
                 "expansion": int(arch[f"stage{s}.block{b}.expansion"])}
                for b in range(1, int(arch[f"stage{s}.depth"]) + 1)
            ])
        return plan
