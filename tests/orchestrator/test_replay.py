"""Tabular replay: searchers run on recorded tables in simulated time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator.errors import ConfigError
from orchestrator.objectives import Constraint, Objective, ObjectiveSet
from orchestrator.replay import (
    Table,
    hypervolume_ratio,
    load_table,
    nb201_table,
    replay,
    save_table,
)
from orchestrator.searchers import create_searcher
from search_spaces import InputSpec, create_space

MLP = create_space("mlp", input_spec=InputSpec((4,), 3))
OBJECTIVES = ObjectiveSet((Objective("accuracy", "max"), Objective("latency_ms", "min")))


def _mlp_table() -> Table:
    entries = {}
    for index in range(MLP.size()):
        codes = np.unravel_index(index, MLP.cardinalities())
        arch = MLP.decode(codes)
        layers, units, act = (int(c) for c in codes)
        entries[arch] = {"accuracy": 0.5 + 0.1 * layers + 0.05 * units - 0.01 * act,
                         "latency_ms": 1.0 + layers * (units + 1) + 0.5 * act,
                         "time_train_s": 1.0 + layers}
    return Table(space=MLP, entries=entries, name="mlp-toy", runtime_metric="time_train_s")


def test_nb201_tables_cover_the_whole_space() -> None:
    table = nb201_table("cifar100")
    assert len(table) == 15_625
    assert set(table.metrics) == {"accuracy", "latency_ms", "params", "train_time_s"}
    front = table.true_front(OBJECTIVES)
    assert 5 <= len(front) <= 100
    best = max(table.rows.values(), key=lambda row: row["accuracy"])
    assert 0.6 < best["accuracy"] < 0.8  # NAS-Bench-201's best CIFAR-100 validation accuracy


def test_replay_uses_the_budget_and_counts_every_proposal() -> None:
    table = _mlp_table()
    result = replay(create_searcher("nsga2", space=MLP, seed=0), table, OBJECTIVES,
                    budget=30, workers=3)
    assert len(result.archs) == 30  # 24 distinct, then repeats (still evaluations)
    assert len({a.key for a in result.archs}) == 24
    assert np.all(np.diff(result.finished_at) >= 0)
    ratio = hypervolume_ratio(result.points, result.violations, table.true_front(OBJECTIVES))
    assert ratio == pytest.approx(1.0)  # the whole space was seen


def test_hypervolume_ratio_of_the_front_is_one_and_less_without_it() -> None:
    front = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    assert hypervolume_ratio(front, np.zeros(3), front) == pytest.approx(1.0)
    assert hypervolume_ratio(front[:2], np.zeros(2), front) < 1.0
    assert hypervolume_ratio(front, np.array([0.0, 1.0, 0.0]), front) < 1.0  # infeasible skipped


def test_table_file_round_trip(tmp_path: Path) -> None:
    table = _mlp_table()
    path = tmp_path / "tables" / "mlp.json"
    save_table(table, path)
    loaded = load_table(path)
    assert loaded.rows == table.rows and loaded.runtime_metric == "time_train_s"
    assert loaded.space.name == "mlp" and loaded.space.size() == 24


def test_bad_tables_and_objectives_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown NAS-Bench-201 dataset 'svhn'; known: cifar10"):
        load_table("nb201:svhn")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a paretonas table"):
        load_table(tmp_path / "x.json")
    bad = ObjectiveSet((Objective("accuracy", "max"),), (Constraint("latency_ms@gpu", maximum=1),))
    with pytest.raises(ConfigError, match=r"no metric\(s\) \['latency_ms@gpu'\]; known: accuracy"):
        replay(create_searcher("random", space=MLP, seed=0), _mlp_table(), bad, budget=3)


def test_constraints_shape_the_true_front() -> None:
    table = _mlp_table()
    constrained = ObjectiveSet(OBJECTIVES.objectives, (Constraint("latency_ms", maximum=100.0),))
    front = table.true_front(constrained)
    assert np.all(front[:, 1] <= 100.0)
