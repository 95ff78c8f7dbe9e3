"""The NAS-Bench-201 cell space: six edges of a 4-node cell, five operations each.

Node ``j`` of the cell sums ``op(node_i)`` over the edges ``i -> j`` (``i < j``); node 3
is the output. The network is NAS-Bench-201's macro skeleton: a 3x3 stem, three stages
of ``cells_per_stage`` cells separated by residual reduction blocks that double the
channels, then global pooling and a linear classifier. The choice order (edges
``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``) and option order match the published tables, so
``encode(arch)`` is the table's row index (see ``orchestrator.replay``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from search_spaces.base import Architecture, InputSpec, SearchSpace
from search_spaces.choices import Categorical, Choice
from search_spaces.errors import SearchSpaceError
from search_spaces.loading import register_space

#: Operations in NAS-Bench-201's order.
OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Edges ``(to, from)`` in NAS-Bench-201's order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def edge_name(to: int, source: int) -> str:
    return f"edge{to}<-{source}"


class _ReLUConvBN(nn.Sequential):
    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(channels),
        )


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def _operation(name: str, channels: int) -> nn.Module:
    if name == "none":
        return _Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return _ReLUConvBN(channels, 1)
    if name == "nor_conv_3x3":
        return _ReLUConvBN(channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise SearchSpaceError(f"unknown NAS-Bench-201 operation {name!r}; known: {OPERATIONS}")


class Cell(nn.Module):
    """One NAS-Bench-201 cell with the operations of ``arch``."""

    def __init__(self, arch: Architecture, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            _operation(str(arch[edge_name(to, source)]), channels) for to, source in EDGES
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to in (1, 2, 3):
            total = None
            for (edge_to, source), op in zip(EDGES, self.edges, strict=True):
                if edge_to == to:
                    out = op(nodes[source])
                    total = out if total is None else total + out
            nodes.append(total if total is not None else x * 0.0)
        return nodes[3]


class _Reduction(nn.Module):
    """ResNet basic block with stride 2 that doubles the channels (NAS-Bench-201's)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        out = 2 * channels
        self.body = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(out), nn.ReLU(), nn.Conv2d(out, out, 3, padding=1, bias=False),
            nn.BatchNorm2d(out),
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2, ceil_mode=True),
                                      nn.Conv2d(channels, out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


@register_space("nb201")
class NB201Space(SearchSpace):
    """NAS-Bench-201's 15,625 cells (``edge{to}<-{from}`` choices, five operations each).

    ``channels`` (16 in the benchmark) is the first stage's width; ``cells_per_stage``
    (5 in the benchmark) the cells between reductions. Smaller values give the same cell
    family at a fraction of the cost, e.g. for 8x8 digits.
    """

    def __init__(self, *, input_spec: InputSpec, channels: int = 16, cells_per_stage: int = 5
                 ) -> None:
        if len(input_spec.shape) != 3:
            raise SearchSpaceError(
                f"nb201 needs (channels, height, width) inputs, got {input_spec.shape}"
            )
        if not isinstance(channels, int) or channels < 1:
            raise SearchSpaceError(f"channels must be an integer >= 1, got {channels!r}")
        if not isinstance(cells_per_stage, int) or cells_per_stage < 1:
            raise SearchSpaceError(f"cells_per_stage must be an integer >= 1, got {cells_per_stage!r}")
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        self._choices: list[Choice] = [Categorical(edge_name(to, source), OPERATIONS)
                                       for to, source in EDGES]
        super().__init__(input_spec=input_spec)

    def choices(self) -> Sequence[Choice]:
        return self._choices

    def build(self, arch: Architecture) -> nn.Module:
        channels = self.channels
        layers: list[nn.Module] = [
            nn.Conv2d(self.input_spec.shape[0], channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        ]
        for stage in range(3):
            if stage:
                layers.append(_Reduction(channels))
                channels *= 2
            layers += [Cell(arch, channels) for _ in range(self.cells_per_stage)]
        layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   nn.Linear(channels, self.input_spec.num_classes)]
        return nn.Sequential(*layers)
