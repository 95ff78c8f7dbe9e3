"""A target is data: which backend, on which device, at which precision, batch and threads."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hardware_pool.errors import TargetUnavailableError

#: Device kinds that run on an NVIDIA GPU (ONNX Runtime's TensorRT EP is ``tensorrt``).
GPU_DEVICES = ("cuda", "tensorrt")


@dataclass(frozen=True, kw_only=True)
class Target:
    """One place a candidate is timed, e.g. ONNX Runtime fp32 batch 1 on CPU cores {1}.

    ``cores`` pins the measuring actor to those CPU cores (``None``: no pinning);
    negative numbers count from the node's last core, so ``[-1]`` means "the last core"
    on whichever node the actor lands.
    Targets on one device share one actor (see ``group_by_device``), so their
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
            cores = tuple(sorted(set(self.cores)))
            if not cores or (min(cores) < 0 <= max(cores)):
                raise TargetUnavailableError(
                    f"target {self.name!r}: cores must be all >= 0 or all negative "
                    f"(counted from the last core), got {list(self.cores)}"
                )
            object.__setattr__(self, "cores", cores)

    @property
    def device_kind(self) -> str:
        """The device without its index: ``cuda:1`` -> ``cuda``."""
        return self.device.split(":", 1)[0]

    @property
    def device_index(self) -> int | None:
        """The index in ``cuda:1`` (``None`` when the device names no index)."""
        _, sep, index = self.device.partition(":")
        return int(index) if sep and index.isdigit() else None

    @property
    def on_gpu(self) -> bool:
        """Whether the target runs on an NVIDIA GPU (its actor asks Ray for one)."""
        return self.device_kind in GPU_DEVICES

    @property
    def num_cpus(self) -> int:
        """CPUs the measuring actor reserves from Ray's scheduler."""
        return len(self.cores) if self.cores is not None else self.threads


def group_by_device(
    targets: Sequence[Target], *, cores: Mapping[str, tuple[int, ...] | None] | None = None,
) -> dict[str, list[Target]]:
    """Targets that share hardware, keyed by a device name.

    ``cores`` maps target names to their cores resolved on one node (see
    ``resolve_cores``), so ``[-1]`` and the same core by number share a device;
    without it the configured numbers are compared as written.

    CPU targets whose core sets overlap (transitively) share a device, and so do
    unpinned CPU targets; GPU targets by GPU index (``gpu:0`` for ``cuda``, ``cuda:0``
    and ONNX Runtime's ``tensorrt``), other devices by name (``npu``). An
    unpinned CPU target may run on any core, so mixing it with pinned ones can let
    their timings overlap: pin every CPU target for clean numbers.
    """
    groups: list[tuple[str, set[int] | None, list[Target]]] = []
    for target in targets:
        # one GPU, one actor, whichever runtime or spelling (cuda, cuda:0, tensorrt) names it
        device = f"gpu:{target.device_index or 0}" if target.on_gpu else target.device
        spec = cores[target.name] if cores is not None else target.cores
        core_set = set(spec) if target.device == "cpu" and spec else None
        merged: list[Target] = [target]
        for group in [g for g in groups if g[0] == device and _overlap(g[1], core_set)]:
            groups.remove(group)
            merged = group[2] + merged
            if core_set is not None and group[1] is not None:
                core_set |= group[1]
        groups.append((device, core_set, merged))
    position = {target.name: index for index, target in enumerate(targets)}
    return {
        device if group_cores is None else f"{device}:" + ",".join(map(str, sorted(group_cores))):
            sorted(members, key=lambda target: position[target.name])
        for device, group_cores, members in groups
    }


def _overlap(first: set[int] | None, second: set[int] | None) -> bool:
    return first == second if first is None or second is None else bool(first & second)


def resolve_cores(
    cores: tuple[int, ...], *, available: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """The concrete cores on a node (negatives count from the last available core).

    ``available``: the node's usable cores (default: this process's, all threads).
    """
    allowed = sorted(available if available is not None else usable_cores())
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


def usable_cores() -> list[int]:
    """The cores this node lets paretonas use: every core any of this process's threads
    may run on (a pinned thread must not shrink what the node offers)."""
    from hardware_pool.affinity import process_cores

    return process_cores() or sorted(os.sched_getaffinity(0))
