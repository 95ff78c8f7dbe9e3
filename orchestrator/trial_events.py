"""Finished Tune trials turned into ``TrialRecord``s, with their failure causes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
from ray import tune

from orchestrator.candidate import is_candidate_metric
from orchestrator.records import TrialRecord, TrialStatus
from search_spaces import Architecture


class RecordingCallback(tune.Callback):
    """Turns finished Tune trials into ``TrialRecord``s as soon as they end."""

    def __init__(self, space_name: str, on_record: Callable[[TrialRecord], None]) -> None:
        self.space_name = space_name
        self.on_record = on_record
        self._started: dict[str, tuple[float, float]] = {}  # trial id -> (epoch, perf counter)

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its run config; the record sink (tracker, console) stays behind."""
        return {**self.__dict__, "on_record": None}

    def attach(self, on_record: Callable[[TrialRecord], None]) -> None:
        """Give a callback restored from Tune's pickled state its sink again (resume)."""
        self.on_record = on_record

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._started[trial.trial_id] = (time.time(), time.perf_counter())

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        metrics = candidate_metrics(trial.last_result or {})
        if trial.checkpoint is None:
            self.on_record(self._record(trial, "completed", metrics=metrics))
            return
        # The trial's checkpoint holds its ONNX model, in Tune's (possibly remote) storage.
        with trial.checkpoint.as_directory() as directory:
            onnx = Path(directory, f"{trial.config['arch_key']}.onnx")
            self.on_record(self._record(trial, "completed", metrics=metrics,
                                        onnx_path=str(onnx) if onnx.is_file() else None))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.on_record(self._record(trial, "failed", error=trial_error(trial)))

    def _record(self, trial: Any, status: TrialStatus, **fields: Any) -> TrialRecord:
        started_at, started = self._started.pop(trial.trial_id, (time.time(), time.perf_counter()))
        return TrialRecord(
            trial_id=trial.trial_id,
            arch=Architecture.from_dict(self.space_name, trial.config["arch"]),
            status=status,
            wall_seconds=time.perf_counter() - started,
            started_at=started_at,
            **fields,
        )


def candidate_metrics(result: dict[str, Any]) -> dict[str, float]:
    """A Tune result's candidate metrics (without Tune's own bookkeeping)."""
    return {
        name: float(value) for name, value in result.items()
        if is_candidate_metric(name) and isinstance(value, int | float) and not isinstance(value, bool)
    }


def trial_error(trial: Any) -> str:
    """The cause of a failed trial in one line, without Ray's wrapping.

    Read from the driver-side copies Tune has just written (the storage copies are
    synced later).
    """
    pickled = trial.pickled_error_file
    error = None
    if pickled and Path(pickled).is_file():
        try:
            error = cloudpickle.loads(Path(pickled).read_bytes())
        except Exception:  # its class may not import here (user code): use the text below
            error = None
    if error is not None:
        cause = getattr(error, "cause", None) or error
        lines = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {lines[-1] if lines else ''}"
    text = Path(trial.error_file).read_text() if trial.error_file else ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"
