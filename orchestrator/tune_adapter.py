"""Ray Tune's side of a paretonas searcher: the ``Searcher`` adapter Tune drives."""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher as TuneSearcher

from orchestrator.objectives import ObjectiveSet
from orchestrator.searchers.base import Searcher
from search_spaces import Architecture


class SearcherAdapter(TuneSearcher):
    """Presents a paretonas ``Searcher`` (ask/tell) to Ray Tune as a Tune ``Searcher``.

    It holds it as ``strategy``: Tune treats a ``searcher`` attribute as a wrapped
    Tune searcher and walks into it.
    """

    def __init__(self, searcher: Searcher, objectives: ObjectiveSet) -> None:
        super().__init__(metric=None, mode=None)
        self.strategy = searcher
        self.objectives = objectives
        self._pending: dict[str, Architecture] = {}

    def suggest(self, trial_id: str) -> dict[str, Any]:
        arch = self.strategy.ask()
        self._pending[trial_id] = arch
        return {"arch": arch.as_dict(), "arch_key": arch.key}

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        arch = self._pending.pop(trial_id, None)
        if arch is None:
            return
        if error or not result or any(name not in result for name in self.objectives.names):
            self.strategy.tell_failure(arch, "trial failed" if error else "objectives missing")
            return
        self.strategy.tell(
            arch,
            objectives=self.objectives.vector(result),
            violation=self.objectives.violation(result),
        )

    def get_state(self) -> dict[str, Any]:
        """Searcher state for Tune's experiment checkpoints (and so for resuming)."""
        return {"strategy": self.strategy, "pending": dict(self._pending)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.strategy = state["strategy"]
        self._pending = dict(state["pending"])
