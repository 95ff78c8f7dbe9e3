"""A target is data: which backend, on which device, at which precision, batch and threads."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hardware_pool.errors import TargetUnavailableError


@dataclass(frozen=True, kw_only=True)
class Target:
    """One place a candidate is timed, e.g. ONNX Runtime fp32 batch 1 on CPU cores {1}.

    ``cores`` pins the measuring actor to those CPU cores (``None``: no pinning);
    negative numbers count from the node's last core, so ``[-1]`` means "the last core"
    on whichever node the actor lands.
    Targets with the same ``device_key`` share one device and so one actor: their
    measurements are serialised and never overlap.
    """

    name: str
    backend: str
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 1
    threads: int = 1
    cores: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.cores is not None:
            object.__setattr__(self, "cores", tuple(sorted(set(self.cores))))

    @property
    def device_key(self) -> str:
        """Identifies the physical device: ``cpu`` plus its cores, or ``cuda:0`` etc."""
        if self.device == "cpu":
            return "cpu" if self.cores is None else "cpu-" + "-".join(map(str, self.cores))
        return self.device

    @property
    def num_cpus(self) -> int:
        """CPUs the measuring actor reserves from Ray's scheduler."""
        return len(self.cores) if self.cores is not None else self.threads


def resolve_cores(cores: tuple[int, ...]) -> tuple[int, ...]:
    """The concrete cores on this node (negatives count from the last available core)."""
    allowed = sorted(os.sched_getaffinity(0))
    resolved = set()
    for core in cores:
        index = len(allowed) + core if core < 0 else None
        if index is not None and index < 0:
            raise TargetUnavailableError(
                f"core {core} does not exist: this node has {len(allowed)} available cores"
            )
        resolved.add(allowed[index] if index is not None else core)
    missing = sorted(resolved - set(allowed))
    if missing:
        raise TargetUnavailableError(
            f"cores {missing} are not available on this node (available: {allowed})"
        )
    return tuple(sorted(resolved))
