"""Elastic (weight-sharing) spaces: one supernet holds every subnet's weights.

Following Once-for-All, dynamic ops allocate their largest weights and slice them
to the active subnet's sizes; which subnet is active is an argument (``forward(x,
arch)``) or a context manager (``with supernet.active(arch):``), never a flag on a
class. ``Supernet.extract(arch)`` returns a plain static ``nn.Module`` with the sliced
weights copied in, which is what export and measurement need.

An ``ElasticSpace`` is still a ``SearchSpace``: ``build(arch)`` extracts ``arch`` from a
freshly initialised supernet, so from-scratch mode and every searcher work on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.base import Architecture, SearchSpace
from search_spaces.errors import SearchSpaceError

Permutation = tuple[torch.Tensor, torch.Tensor, int]
"""A parameter that ``Supernet.sort_channels`` permuted: (parameter, index, dimension)."""


def permute_(tensor: torch.Tensor, index: torch.Tensor, dim: int) -> None:
    """Reorder ``tensor`` in place along ``dim``: position ``i`` takes entry ``index[i]``."""
    with torch.no_grad():
        tensor.copy_(tensor.index_select(dim, index))


class Supernet(nn.Module, ABC):
    """The weights of every subnet of ``space``; subclasses implement two methods.

    ``forward_subnet(x, arch)`` runs ``arch``'s path through the shared weights;
    ``extract_subnet(arch)`` builds the static module with those weights copied in.
    Both receive an architecture already validated against the space.
    """

    def __init__(self, space: ElasticSpace) -> None:
        super().__init__()
        self.space_name = space.name
        self._validate = space.architecture  # not a submodule, not in the state dict
        self._active: Architecture | None = None

    @abstractmethod
    def forward_subnet(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        """Logits of subnet ``arch`` for the batch ``x``."""

    @abstractmethod
    def extract_subnet(self, arch: Architecture) -> nn.Module:
        """A static module computing ``forward_subnet(x, arch)`` with copied weights."""

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        """Run ``arch``, or the subnet made active with ``active(...)``."""
        chosen = arch if arch is not None else self._active
        if chosen is None:
            raise SearchSpaceError(f"{self.space_name} supernet: no subnet given; call "
                                   f"supernet(x, arch) or use `with supernet.active(arch):`")
        return self.forward_subnet(x, self.check(chosen))

    @contextmanager
    def active(self, arch: Architecture) -> Iterator[Supernet]:
        """Make ``arch`` the subnet ``supernet(x)`` runs inside the ``with`` block."""
        checked, previous = self.check(arch), self._active
        self._active = checked
        try:
            yield self
        finally:
            self._active = previous

    def extract(self, arch: Architecture) -> nn.Module:
        """A plain ``nn.Module`` equal to ``arch``'s path, weights copied (not shared)."""
        model = self.extract_subnet(self.check(arch))
        model.train(self.training)
        return model

    def sort_channels(self) -> list[Permutation]:
        """Reorder elastic channels by importance, most important first, so the slices
        every smaller subnet takes hold the channels that matter most (once-for-all's
        re-organisation, done when the largest subnet alone has trained). Weights and
        buffers are permuted in place; the largest subnet computes the same function
        afterwards. Returns each permuted parameter with its index and dimension, so an
        optimiser's state can follow. The default sorts nothing."""
        return []

    def check(self, arch: Architecture) -> Architecture:
        """``arch`` validated against the space: a value out of range names its dimension."""
        if arch.space != self.space_name:
            raise SearchSpaceError(f"architecture {arch.key} is from space {arch.space!r}, "
                                   f"this supernet is {self.space_name!r}")
        return self._validate(arch.as_dict())


class ElasticSpace(SearchSpace):
    """A space whose architectures are subnets of one supernet.

    Subclasses implement ``choices`` and ``supernet``; ``largest``/``smallest`` (the
    sandwich rule's ends) default to each choice's largest/smallest option and should
    be overridden when the options are not ordered by size.
    """

    @abstractmethod
    def supernet(self) -> Supernet:
        """A freshly initialised supernet holding the largest weights."""

    def build(self, arch: Architecture) -> nn.Module:
        return self.supernet().extract(arch).eval()

    def largest(self) -> Architecture:
        return self.architecture({c.name: max(c.options()) for c in self.choices()})

    def smallest(self) -> Architecture:
        return self.architecture({c.name: min(c.options()) for c in self.choices()})


# -- dynamic ops: allocate the largest, slice to the active sizes --------------------------
def _check_size(op: str, what: str, value: int, largest: int) -> None:
    if not 1 <= value <= largest:
        raise SearchSpaceError(f"{op}: {what} {value} is outside the elastic range 1..{largest}")


class DynamicLinear(nn.Module):
    """``nn.Linear`` over the first ``in``/``out`` features of its largest weight."""

    def __init__(self, max_in_features: int, max_out_features: int, *, bias: bool = True) -> None:
        super().__init__()
        self.max_in_features, self.max_out_features = max_in_features, max_out_features
        self.linear = nn.Linear(max_in_features, max_out_features, bias=bias)

    def forward(self, x: torch.Tensor, out_features: int | None = None) -> torch.Tensor:
        out = self.max_out_features if out_features is None else out_features
        weight, bias = self._slices(x.shape[-1], out)
        return F.linear(x, weight, bias)

    def static(self, in_features: int, out_features: int | None = None) -> nn.Linear:
        out = self.max_out_features if out_features is None else out_features
        weight, bias = self._slices(in_features, out)
        layer = nn.Linear(in_features, out, bias=bias is not None)
        _copy(layer, weight, bias)
        return layer

    def _slices(self, in_features: int, out: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        _check_size("DynamicLinear", "in_features", in_features, self.max_in_features)
        _check_size("DynamicLinear", "out_features", out, self.max_out_features)
        bias = self.linear.bias[:out] if self.linear.bias is not None else None
        return self.linear.weight[:out, :in_features], bias


class DynamicConv2d(nn.Module):
    """A 2-D convolution over the first channels and the centre of its largest kernel.

    ``depthwise=True`` makes it a depthwise convolution (groups = channels), whose
    output channels follow its input channels.
    """

    def __init__(self, max_in_channels: int, max_out_channels: int, *, max_kernel_size: int = 1,
                 stride: int = 1, depthwise: bool = False, bias: bool = False) -> None:
        super().__init__()
        if max_kernel_size % 2 == 0:
            raise SearchSpaceError(f"DynamicConv2d: kernel sizes must be odd, got {max_kernel_size}")
        if depthwise and max_in_channels != max_out_channels:
            raise SearchSpaceError("DynamicConv2d: a depthwise convolution keeps its channel count")
        self.max_in_channels, self.max_out_channels = max_in_channels, max_out_channels
        self.max_kernel_size, self.stride, self.depthwise = max_kernel_size, stride, depthwise
        self.conv = nn.Conv2d(max_in_channels, max_out_channels, max_kernel_size, stride=stride,
                              padding=max_kernel_size // 2, bias=bias,
                              groups=max_in_channels if depthwise else 1)

    def forward(self, x: torch.Tensor, out_channels: int | None = None,
                kernel_size: int | None = None) -> torch.Tensor:
        in_channels = x.shape[1]
        out, kernel = self._sizes(in_channels, out_channels, kernel_size)
        weight, bias = self._slices(in_channels, out, kernel)
        return F.conv2d(x, weight, bias, stride=self.stride, padding=kernel // 2,
                        groups=in_channels if self.depthwise else 1)

    def static(self, in_channels: int, out_channels: int | None = None,
               kernel_size: int | None = None) -> nn.Conv2d:
        out, kernel = self._sizes(in_channels, out_channels, kernel_size)
        weight, bias = self._slices(in_channels, out, kernel)
        conv = nn.Conv2d(in_channels, out, kernel, stride=self.stride, padding=kernel // 2,
                         bias=bias is not None, groups=in_channels if self.depthwise else 1)
        _copy(conv, weight, bias)
        return conv

    def _sizes(self, in_channels: int, out_channels: int | None, kernel_size: int | None
               ) -> tuple[int, int]:
        if self.depthwise:
            out = in_channels
        else:
            out = self.max_out_channels if out_channels is None else out_channels
        kernel = self.max_kernel_size if kernel_size is None else kernel_size
        _check_size("DynamicConv2d", "in_channels", in_channels, self.max_in_channels)
        _check_size("DynamicConv2d", "out_channels", out, self.max_out_channels)
        _check_size("DynamicConv2d", "kernel_size", kernel, self.max_kernel_size)
        if kernel % 2 == 0:
            raise SearchSpaceError(f"DynamicConv2d: kernel_size must be odd, got {kernel}")
        return out, kernel

    def _slices(self, in_channels: int, out: int, kernel: int
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        start = (self.max_kernel_size - kernel) // 2
        weight = self.conv.weight[:out, : 1 if self.depthwise else in_channels,
                                  start:start + kernel, start:start + kernel]
        bias = self.conv.bias[:out] if self.conv.bias is not None else None
        return weight, bias


class DynamicBatchNorm2d(nn.Module):
    """Batch norm over the first channels of its largest statistics and affine weights.

    In training mode the sliced running statistics are updated in place, so each
    subnet trains the shared statistics of the channels it uses.
    """

    def __init__(self, max_channels: int, *, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.max_channels = max_channels
        self.bn = nn.BatchNorm2d(max_channels, momentum=momentum, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        _check_size("DynamicBatchNorm2d", "channels", channels, self.max_channels)
        bn = self.bn
        assert bn.running_mean is not None and bn.running_var is not None  # track_running_stats
        return F.batch_norm(x, bn.running_mean[:channels], bn.running_var[:channels],
                            bn.weight[:channels], bn.bias[:channels],
                            self.training, bn.momentum or 0.0, bn.eps)

    def static(self, channels: int) -> nn.BatchNorm2d:
        _check_size("DynamicBatchNorm2d", "channels", channels, self.max_channels)
        bn = nn.BatchNorm2d(channels, momentum=self.bn.momentum, eps=self.bn.eps)
        source = self.bn
        assert source.running_mean is not None and source.running_var is not None
        assert bn.running_mean is not None and bn.running_var is not None
        with torch.no_grad():
            bn.weight.copy_(source.weight[:channels])
            bn.bias.copy_(source.bias[:channels])
            bn.running_mean.copy_(source.running_mean[:channels])
            bn.running_var.copy_(source.running_var[:channels])
        return bn


def _copy(layer: nn.Linear | nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None and layer.bias is not None:
            layer.bias.copy_(bias)
