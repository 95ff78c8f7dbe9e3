"""Argument checks shared by the evaluators' settings dataclasses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from evaluators.errors import SettingsError

#: A torch device a trainer may use (configs validate against it too).
DEVICE_PATTERN = r"^(cpu|cuda(:[0-9]+)?)$"
_DEVICE = re.compile(DEVICE_PATTERN)


def check_integers(settings: object, minimums: Mapping[str, int]) -> None:
    """Raise ``SettingsError`` unless each named field of ``settings`` is an int >= its minimum."""
    for name, least in minimums.items():
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise SettingsError(f"{type(settings).__name__}.{name} must be an integer >= {least}, "
                                f"got {value!r}")


def check_device(settings: Any) -> None:
    """Raise ``SettingsError`` unless ``settings.device`` is ``cpu``, ``cuda`` or ``cuda:N``."""
    value = settings.device
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise SettingsError(f"{type(settings).__name__}.device must be 'cpu', 'cuda' or "
                            f"'cuda:N', got {value!r}")


def torch_device(name: str, *, purpose: str) -> torch.device:
    """The torch device ``name``; a ``SettingsError`` naming ``purpose`` when it is a CUDA
    device this process cannot see (no GPU, or Ray gave the process none)."""
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingsError(f"{purpose} device {name!r} asked for, but torch sees no CUDA "
                                f"GPU here (does the trial ask Ray for a GPU?)")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise SettingsError(f"{purpose} device {name!r} asked for, but this process sees "
                                f"{torch.cuda.device_count()} GPU(s)")
    return torch.device(name)
