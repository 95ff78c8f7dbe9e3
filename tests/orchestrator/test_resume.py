"""Resume: a search whose driver is SIGKILLed part-way continues where it stopped."""

from __future__ import annotations

import copy
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient
from ray.tune.search import Searcher as TuneSearcher

from evaluators.data import load_dataset
from orchestrator.cli import main
from orchestrator.config import parse_config
from orchestrator.experiment import TUNE_STATE, ExperimentDir
from orchestrator.searchers import create_searcher
from orchestrator.tune_adapter import SearcherAdapter
from search_spaces import create_space
from tests.conftest import ROOT, TINY_CONFIG
from tests.orchestrator.ray_head import session_members

BUDGET = 6


def _config(tmp_path: Path) -> dict[str, Any]:
    config = copy.deepcopy(TINY_CONFIG)
    config["targets"] = [{"name": "cpu-ort", "backend": "onnxruntime", "cores": [-1]}]
    config["objectives"] = {"accuracy": "max", "latency_ms@cpu-ort": "min"}
    # A population as large as the budget keeps every result: what was there before the
    # kill must still be there after the resume.
    config["searcher"] = {"name": "nsga2", "options": {"population_size": BUDGET}}
    config["budget"] = {"candidates": BUDGET}
    # Each measurement takes at least half a second, so the search is still running when the
    # test sees two results in Tune's saved state (saved every 2 s), however fast the machine.
    config["timing"] = {**config["timing"], "min_seconds": 0.5}
    config["tracking"] = {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "resume"}
    config["output_dir"] = str(tmp_path / "results")
    return config


def _runs(uri: str) -> tuple[list[Any], list[Any]]:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("resume")
    if experiment is None:
        return [], []
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("paretonas.kind") == "search"]
    children = [r for r in runs if r.data.tags.get("paretonas.kind") == "candidate"]
    return parents, children


def _searcher_population(config: dict[str, Any], experiment: Path) -> set[str]:
    """The population in the newest searcher state Tune saved in ``experiment``."""
    parsed = parse_config(config)
    space = create_space(parsed.space.name, input_spec=load_dataset("digits", seed=0).input_spec,
                         options=parsed.space.options)
    adapter = SearcherAdapter(create_searcher(parsed.searcher.name, space=space, seed=parsed.seed,
                                              options=parsed.searcher.options),
                              parsed.objective_set())
    if not list(experiment.glob("searcher-state-*.pkl")):
        return set()
    adapter.restore_from_dir(str(experiment))
    return {arch.key for arch, _ in adapter.strategy.population}  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(SearcherAdapter.save is TuneSearcher.save,
                    reason="needs the searcher adapter's Tune save/restore (searcher persistence)")
def test_killed_search_resumes_without_repeats(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    uri = config["tracking"]["uri"]
    experiment = Path(ExperimentDir.of(parse_config(config)).path)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(path)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:  # killed once the searcher state Tune saved holds two results
        deadline = time.monotonic() + 240
        while driver.poll() is None and time.monotonic() < deadline:
            try:
                if len(_searcher_population(config, experiment)) >= 2:
                    break
            except (EOFError, pickle.UnpicklingError):  # read while Tune was copying it in
                pass
            time.sleep(0.1)
    finally:
        driver.send_signal(signal.SIGKILL)  # the driver dies as in a crash ...
        driver.wait()
        for pid in session_members(driver.pid):  # ... and the Ray it had started goes too
            os.kill(pid, signal.SIGKILL)
    # MLflow is written asynchronously: the kill may land before the newest finished candidates
    # reach it. They are in the journal, and the resume below must write them.
    parents, before = _runs(uri)
    assert len(before) < BUDGET, (tmp_path / "driver.log").read_text()[-3000:]
    population_before = _searcher_population(config, experiment)
    assert len(population_before) >= 2

    # A plain run does not silently start over: it says how to resume.
    assert main(["run", str(path)]) == 2
    assert f"paretonas resume {experiment}" in capsys.readouterr().err

    assert main(["resume", str(experiment)]) == 0
    assert f"of {BUDGET} candidates" in capsys.readouterr().out

    parents_after, children = _runs(uri)
    assert [p.info.run_id for p in parents_after] == [p.info.run_id for p in parents]  # continued
    assert parents_after[0].info.status == "FINISHED"
    trial_ids = [c.data.tags["paretonas.trial_id"] for c in children]
    arch_keys = [c.data.tags["paretonas.arch_key"] for c in children]
    assert len(children) == BUDGET  # final candidates = budget, no duplicate runs
    assert len(set(trial_ids)) == BUDGET and len(set(arch_keys)) == BUDGET  # none trained twice
    assert {c.info.run_id for c in before} <= {c.info.run_id for c in children}

    # The searcher went on from its saved population: every member from before the kill is
    # still there, and the rest are the candidates evaluated after the resume.
    population_after = _searcher_population(config, experiment)
    assert population_before <= population_after
    assert population_after == set(arch_keys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_resuming_where_the_machine_lacks_what_the_search_asks_for_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Resumed on a machine without the GPU the trials ask for: one line, not a wait."""
    config = copy.deepcopy(TINY_CONFIG)
    config.update(output_dir=str(tmp_path / "results"), budget={"candidates": 4, "trial_gpus": 1})
    experiment = ExperimentDir.of(parse_config(config))
    experiment.save(parse_config(config), run_id=None)
    (Path(experiment.path) / TUNE_STATE).write_text("{}")
    assert main(["resume", experiment.path]) == 2
    err = capsys.readouterr().err
    assert "budget.trial_gpus 1 (each trial) asks for a GPU" in err and "Traceback" not in err
