"""Can this node measure these targets? Checked before anything trains."""

from __future__ import annotations

from collections.abc import Sequence

from evaluators.backends import BACKENDS
from evaluators.backends.base import BackendOptions
from hardware_pool.errors import TargetUnavailableError
from hardware_pool.target import Target, resolve_cores, usable_cores
from search_spaces.errors import ParetonasError


def check_targets(targets: Sequence[Target], *, cores: Sequence[int] | None = None) -> list[str]:
    """Every reason one of ``targets`` cannot be measured on this node (empty: all fine).

    Checks that the backend is registered and available for the target's device and
    precision here, that its cores exist (``cores``: the node's usable cores, default
    this process's), and that a ``cuda`` device has a GPU. Each problem is one line
    starting with ``target '<name>':``.
    """
    available = list(cores) if cores is not None else usable_cores()
    problems: list[str] = []
    for target in targets:
        problems.extend(f"target {target.name!r}: {problem}"
                        for problem in target_problems(target, available=available))
    return problems


def require_targets(targets: Sequence[Target], *, cores: Sequence[int] | None = None) -> None:
    """Raise one ``TargetUnavailableError`` listing every problem ``check_targets`` finds."""
    problems = check_targets(targets, cores=cores)
    if problems:
        raise TargetUnavailableError(
            "target(s) cannot be measured on this machine:\n  " + "\n  ".join(problems)
        )


def target_problems(target: Target, *, available: Sequence[int]) -> list[str]:
    """The problems of one target on a node with ``available`` cores."""
    problems: list[str] = []
    if target.backend not in BACKENDS:
        problems.append(f"unknown backend {target.backend!r}; known: {', '.join(BACKENDS.names())}")
    else:
        backend = BACKENDS.get(target.backend)
        try:
            reason = backend.availability(
                BackendOptions(device=target.device_kind, precision=target.precision,
                               threads=target.threads))
        except ParetonasError as error:
            reason = str(error)
        if reason:
            problems.append(f"{target.backend} cannot run {target.device}/{target.precision} "
                            f"here: {reason}")
    if target.cores is not None:
        try:
            resolve_cores(target.cores, available=available)
        except TargetUnavailableError as error:
            problems.append(f"cores {list(target.cores)}: {error}")
    if target.on_gpu:
        from hardware_pool.discovery import cuda_gpus

        gpus = cuda_gpus()
        if not gpus:
            problems.append(f"device {target.device} needs an NVIDIA GPU, and none is visible "
                            "here (nvidia-smi and torch.cuda find none)")
        elif target.device_index is not None and target.device_index >= len(gpus):
            problems.append(f"device {target.device}: this node has {len(gpus)} GPU(s) "
                            f"(cuda:0..cuda:{len(gpus) - 1})")
    return problems
