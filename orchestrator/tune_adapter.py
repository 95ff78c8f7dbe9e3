"""Ray Tune's side of a paretonas searcher: the ``Searcher`` adapter Tune drives."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher as TuneSearcher

from orchestrator.errors import SearchError
from orchestrator.objectives import ObjectiveSet
from orchestrator.searchers.base import Searcher
from search_spaces import Architecture

#: Result keys naming which of a trial's architectures a streamed result belongs to.
ARCH_KEY = "arch_key"
ARCH_INDEX = "arch_index"
#: Result key of a partial result's fidelity (e.g. epochs trained so far).
FIDELITY = "fidelity"


class SearcherAdapter(TuneSearcher):
    """Presents a paretonas ``Searcher`` (ask/tell) to Ray Tune as a Tune ``Searcher``.

    Each Tune trial gets ``batch_size`` architectures. With one, its config is
    ``{"arch": values, "arch_key": key}`` and the trial's final result is told on
    completion. With more, the config is ``{"archs": [values...], "arch_keys": [keys...]}``
    and the trial reports one result per architecture (``tune.report`` with ``arch_key``
    or ``arch_index``); each is told as it streams in (``on_trial_result``), and those
    never reported are told as failures when the trial ends. A result with a
    ``fidelity`` is told as a partial result.

    Tune persists the adapter through ``save``/``restore`` (atomic pickle of the
    searcher's state and the pending proposals), which is what resuming an experiment
    (``Tuner.restore``) reads back. It holds the searcher as ``strategy``: Tune treats a
    ``searcher`` attribute as a wrapped Tune searcher and walks into it.
    """

    def __init__(self, searcher: Searcher, objectives: ObjectiveSet, *, batch_size: int = 1
                 ) -> None:
        if batch_size < 1:
            raise SearchError(f"batch_size must be >= 1, got {batch_size}")
        super().__init__(metric=None, mode=None)
        self.strategy = searcher
        self.objectives = objectives
        self.batch_size = batch_size
        self._pending: dict[str, dict[str, Architecture]] = {}  # trial id -> key -> arch
        self._order: dict[str, tuple[Architecture, ...]] = {}  # trial id -> all, in order

    @property
    def pending(self) -> dict[str, list[str]]:
        """Architecture keys proposed to each running trial and not yet told."""
        return {trial: list(archs) for trial, archs in self._pending.items()}

    def suggest(self, trial_id: str) -> dict[str, Any]:
        archs = (self.strategy.ask_batch(self.batch_size) if self.batch_size > 1
                 else [self.strategy.ask()])
        self._pending[trial_id] = {arch.key: arch for arch in archs}
        self._order[trial_id] = tuple(archs)
        if self.batch_size == 1:
            return {"arch": archs[0].as_dict(), "arch_key": archs[0].key}
        return {"archs": [arch.as_dict() for arch in archs], "arch_keys": [a.key for a in archs]}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        archs = self._pending.get(trial_id)
        if not archs or not self._has_objectives(result):
            return
        arch = self._arch_of(trial_id, archs, result)
        if arch is None:
            return
        fidelity = result.get(FIDELITY)
        if fidelity is not None:
            self._tell_result(arch, result, fidelity=float(fidelity))
            return
        if self.batch_size > 1 or ARCH_KEY in result or ARCH_INDEX in result:
            del archs[arch.key]
            self._tell_result(arch, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        archs = self._pending.pop(trial_id, None)
        self._order.pop(trial_id, None)
        if not archs:
            return
        if self.batch_size == 1 and not error and result and self._has_objectives(result):
            (arch,) = archs.values()
            self._tell_result(arch, result)
            return
        reason = "trial failed" if error else "objectives missing"
        for arch in archs.values():
            self.strategy.tell_failure(arch, reason)

    # -- persistence (Tune's contract, used by experiment checkpoints and resume) ---------
    def save(self, checkpoint_path: str) -> None:
        """Pickle the searcher's state and the pending proposals to ``checkpoint_path``."""
        path = Path(checkpoint_path)
        payload = pickle.dumps(self.get_state())
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.",
                                         delete=False) as handle:
            handle.write(payload)
        os.replace(handle.name, path)

    def restore(self, checkpoint_path: str) -> None:
        with Path(checkpoint_path).open("rb") as handle:
            self.set_state(pickle.load(handle))  # noqa: S301 (Tune's own checkpoint)

    def get_state(self) -> dict[str, Any]:
        return {"searcher": self.strategy.state(), "batch_size": self.batch_size,
                "pending": {trial: dict(archs) for trial, archs in self._pending.items()},
                "order": dict(self._order)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.strategy.restore(state["searcher"])
        self.batch_size = int(state["batch_size"])
        self._pending = {trial: dict(archs) for trial, archs in state["pending"].items()}
        self._order = dict(state["order"])

    # -- internals ------------------------------------------------------------------------
    def _has_objectives(self, result: dict[str, Any]) -> bool:
        return all(name in result for name in self.objectives.names)

    def _arch_of(self, trial_id: str, archs: dict[str, Architecture], result: dict[str, Any]
                 ) -> Architecture | None:
        """The still-pending architecture ``result`` is about, if any."""
        if ARCH_KEY in result:
            return archs.get(str(result[ARCH_KEY]))
        if ARCH_INDEX in result:
            index, batch = int(result[ARCH_INDEX]), self._order.get(trial_id, ())
            return archs.get(batch[index].key) if 0 <= index < len(batch) else None
        return next(iter(archs.values())) if len(archs) == 1 else None

    def _tell_result(self, arch: Architecture, result: dict[str, Any], fidelity: float | None = None
              ) -> None:
        self.strategy.tell(arch, objectives=self.objectives.vector(result),
                           violation=self.objectives.violation(result), fidelity=fidelity)
