"""The Tune adapter: trial ids, streamed batch results, and Tune's save/restore contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.objectives import Objective, ObjectiveSet
from orchestrator.searchers import create_searcher
from orchestrator.tune_adapter import SearcherAdapter
from search_spaces import InputSpec, create_space

SPACE = create_space("conv-classifier", input_spec=InputSpec((1, 8, 8), 10))
OBJECTIVES = ObjectiveSet((Objective("accuracy", "max"), Objective("latency_ms@cpu", "min")))


def _result(config: dict, **extra: object) -> dict:
    arch = SPACE.architecture(config)
    codes = SPACE.encode(arch)
    return {"accuracy": 0.5 + 0.01 * codes.sum(), "latency_ms@cpu": 1.0 + codes[0] * codes[1],
            **extra}


def _adapter(name: str = "nsga2", batch_size: int = 1) -> SearcherAdapter:
    options = {"population_size": 4} if name == "nsga2" else {}
    searcher = create_searcher(name, space=SPACE, seed=3, options=options, num_objectives=2)
    return SearcherAdapter(searcher, OBJECTIVES, batch_size=batch_size)


def test_save_restore_round_trips_population_and_pending(tmp_path: Path) -> None:
    adapter = _adapter()
    for i in range(10):
        config = adapter.suggest(f"t{i}")
        adapter.on_trial_complete(f"t{i}", _result(config["arch"]))
    for i in range(10, 13):  # three trials still running at the checkpoint
        adapter.suggest(f"t{i}")
    path = tmp_path / "searcher-state-test.pkl"
    adapter.save(str(path))
    assert path.is_file() and not list(tmp_path.glob(".*"))  # atomic: no temporary left

    restored = _adapter()
    restored.restore(str(path))
    assert restored.pending == adapter.pending and len(restored.pending) == 3
    assert restored.strategy.population == adapter.strategy.population  # type: ignore[attr-defined]
    for i in range(10, 13):  # the running trials finish after the restore, on both
        config = {"arch": adapter._pending[f"t{i}"][adapter.pending[f"t{i}"][0]].as_dict()}
        for each in (adapter, restored):
            each.on_trial_complete(f"t{i}", _result(config["arch"]))
    assert [adapter.suggest(f"n{i}")["arch_key"] for i in range(5)] == \
        [restored.suggest(f"n{i}")["arch_key"] for i in range(5)]


def test_batch_results_stream_in_by_key_or_index() -> None:
    adapter = _adapter("regularized", batch_size=3)
    config = adapter.suggest("t0")
    assert len(config["archs"]) == len(set(config["arch_keys"])) == 3
    adapter.on_trial_result("t0", _result(config["archs"][1], arch_key=config["arch_keys"][1]))
    adapter.on_trial_result("t0", _result(config["archs"][0], arch_index=0))
    assert adapter.pending == {"t0": [config["arch_keys"][2]]}
    told = {arch.key for arch, _ in adapter.strategy.population}  # type: ignore[attr-defined]
    assert told == set(config["arch_keys"][:2])
    adapter.on_trial_complete("t0", {"done": True})  # the third never reported: a failure
    assert adapter.pending == {}


def test_partial_results_are_told_with_their_fidelity() -> None:
    adapter = _adapter()
    config = adapter.suggest("t0")
    adapter.on_trial_result("t0", _result(config["arch"], fidelity=1))
    assert adapter.pending == {"t0": [config["arch_key"]]}  # still running
    assert len(adapter.strategy.population) == 1  # type: ignore[attr-defined]
    adapter.on_trial_complete("t0", _result(config["arch"]))
    assert adapter.pending == {}


def test_failed_trials_are_told_as_failures() -> None:
    adapter = _adapter()
    config = adapter.suggest("t0")
    adapter.on_trial_complete("t0", None, error=True)
    assert adapter.pending == {} and adapter.strategy.population == []  # type: ignore[attr-defined]
    assert adapter.suggest("t1")["arch_key"] != config["arch_key"]


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(Exception, match="batch_size must be >= 1"):
        _adapter(batch_size=0)
