"""Immutable records of what the search evaluated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from search_spaces import Architecture

TrialStatus = Literal["completed", "failed"]


@dataclass(frozen=True)
class TrialRecord:
    """One evaluated candidate: its architecture, its metrics or the cause of its failure."""

    trial_id: str
    arch: Architecture
    status: TrialStatus
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    wall_seconds: float = 0.0
    started_at: float = 0.0  # epoch seconds when Tune started the trial
    onnx_path: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "completed"
