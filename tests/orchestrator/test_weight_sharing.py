"""Weight-sharing mode end to end: supernet trial, batched subnet trials, real pool, MLflow."""

from __future__ import annotations

import copy
import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from evaluators import get_backend
from evaluators.accuracy import evaluate_accuracy
from evaluators.backends import BackendOptions
from evaluators.data import Dataset, load_dataset
from evaluators.errors import CheckpointError
from evaluators.supernet import train_supernet
from orchestrator.cli import main
from orchestrator.config import SearchConfig, load_config, parse_config
from orchestrator.errors import ConfigError
from orchestrator.experiment import ExperimentDir
from orchestrator.journal import Journal, trial_entry
from orchestrator.objectives import Objective, ObjectiveSet
from orchestrator.records import TrialRecord
from orchestrator.searchers.random_search import RandomSearcher
from orchestrator.tracking import MlflowTracker
from orchestrator.tune_driver import run_search
from orchestrator.weight_sharing import (
    BatchSearcherAdapter,
    LiveFront,
    SubnetSource,
    earlier_subnets,
    elastic_space,
    export_front,
    finetune_front,
)
from search_spaces import InputSpec
from tests.conftest import ROOT
from tests.elastic_fixtures import DIGITS, TINY_OPTIONS, one_thread, tiny_space
from tests.orchestrator.ray_head import session_members

_one_thread = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture
def ws_config(tiny_config: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(tiny_config)
    config.update(
        mode="weight_sharing",
        space={"name": "elastic-mobilenet-v3", "options": copy.deepcopy(TINY_OPTIONS)},
        supernet={"steps": 16, "batch_size": 32, "checkpoint_every": 8, "log_every": 4,
                  "random_subnets": 1, "eval_samples": 100, "calibration_batches": 1,
                  "calibration_batch_size": 32, "subnets_per_trial": 3},
        budget={"candidates": 7},
        objectives={"accuracy": "max", "latency_ms@cpu-ort": "min"},
        searcher={"name": "nsga2", "options": {"population_size": 4}},
    )
    return config


def test_weight_sharing_needs_an_elastic_space(ws_config: dict[str, Any]) -> None:
    ws_config["space"] = {"name": "conv-classifier"}
    with pytest.raises(ConfigError, match="mode: weight_sharing needs an elastic space"):
        parse_config(ws_config)


def test_teacher_steps_must_leave_sandwich_steps(ws_config: dict[str, Any]) -> None:
    ws_config["supernet"]["teacher_steps"] = 16
    with pytest.raises(ConfigError, match=r"supernet.*teacher_steps \(16\) must be below steps \(16\)"):
        parse_config(ws_config)
    ws_config["supernet"]["teacher_steps"] = 4
    assert parse_config(ws_config).supernet.settings(0).teacher_steps == 4


@pytest.mark.parametrize("name", ["weight_sharing.yaml", "weight_sharing_gpu_cluster.yaml"])
def test_shipped_configs_are_valid_and_their_subnets_run(name: str) -> None:
    config = load_config(ROOT / "configs" / name)
    assert config.mode == "weight_sharing" and config.supernet.checkpoint is None
    space = elastic_space(config, InputSpec(shape=(1, 28, 28), num_classes=10))
    with torch.no_grad():
        assert space.build(space.smallest())(space.example_input(2)).shape == (2, 10)


@pytest.mark.slow
@pytest.mark.integration
def test_a_weight_sharing_search_reaches_the_tracker(ws_config: dict[str, Any], tmp_path: Path,
                                                     ray_local: None,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    ws_config["supernet"]["finetune_epochs"] = 1
    config = parse_config(ws_config)
    tracker = MlflowTracker(uri=config.tracking.uri, experiment=config.tracking.experiment)
    result = run_search(config, tracker=tracker)

    assert len(result.records) == 7 and all(r.ok for r in result.records), \
        [r.error for r in result.records]
    assert result.warnings == ()  # every front member fine-tuned
    assert len({r.trial_id for r in result.records}) == 7
    for record in result.records:
        assert 0.0 <= record.metrics["accuracy"] <= 1.0
        assert record.metrics["latency_ms@cpu-ort"] > 0 and record.metrics["latency_ms@cpu-openvino"] > 0
        assert {"time_extract_s", "time_calibrate_s", "time_measure_s"} <= set(record.metrics)
    front = result.summary.front
    assert front and all(r.onnx_path and Path(r.onnx_path).is_file() for r in front)

    client = MlflowClient(tracking_uri=config.tracking.uri)
    parent = client.get_run(result.run_id)
    assert [m.step for m in client.get_metric_history(result.run_id, "supernet_loss_largest")] == \
        [4, 8, 12, 16]
    assert [a.path for a in client.list_artifacts(result.run_id, "supernet")] == ["supernet/tiny.pt"]
    assert parent.data.metrics["candidates"] == 7
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(children) == 7
    on_front = [c for c in children if c.data.tags.get("paretonas.pareto_front") == "true"]
    assert len(on_front) == len(front)
    # every front member is fine-tuned (and those the confirmation pass then took off the
    # front keep theirs); the metric reaches exactly the runs of the records that have it
    assert all("finetuned_accuracy" in c.data.metrics for c in on_front)
    tuned = sorted(r.metrics["finetuned_accuracy"] for r in result.records
                   if "finetuned_accuracy" in r.metrics)
    assert sorted(c.data.metrics["finetuned_accuracy"] for c in children
                  if "finetuned_accuracy" in c.data.metrics) == tuned
    assert len(tuned) >= len(front)
    assert sorted(a.path for a in client.list_artifacts(result.run_id, "front")) == \
        sorted(f"front/{r.arch.key}.onnx" for r in front)

    # A second search reuses the trained supernet; one for other space options is refused.
    checkpoint = Path(config.output_dir, "supernet", "tiny.pt")
    ws_config["supernet"]["checkpoint"] = str(checkpoint)
    ws_config["space"]["options"]["kernel_sizes"] = [3]
    with pytest.raises(CheckpointError, match=r"dimension stage1\.block1\.kernel_size allows \[3\]"):
        run_search(parse_config(ws_config), tracker=MlflowTracker(uri=config.tracking.uri,
                                                                  experiment="again"))

    # The CLI trains (here: finds finished) the supernet of a config on its own.
    ws_config["space"]["options"]["kernel_sizes"] = TINY_OPTIONS["kernel_sizes"]
    path = tmp_path / "ws.yaml"
    path.write_text(yaml.safe_dump(ws_config))
    assert main(["supernet", "train", str(path)]) == 0
    out = capsys.readouterr().out
    assert "trained to step 16" in out and f"supernet.checkpoint={checkpoint}" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_training_a_supernet_on_a_missing_gpu_is_refused_before_ray_starts(
        ws_config: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws_config["supernet"]["device"] = "cuda"
    path = tmp_path / "ws.yaml"
    path.write_text(yaml.safe_dump(ws_config))
    assert main(["supernet", "train", str(path)]) == 2
    err = capsys.readouterr().err
    assert "supernet.device cuda (the supernet trial) asks for a GPU" in err
    assert "Traceback" not in err and not Path(ws_config["output_dir"]).exists()


class _Recording(RandomSearcher):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.told: list[tuple[str, list[float]]] = []
        self.failed: list[tuple[str, str]] = []
        self.batches: list[int] = []

    def ask_batch(self, count: int) -> list[Any]:
        self.batches.append(count)
        return super().ask_batch(count)

    def tell(self, arch: Any, *, objectives: Any, violation: float = 0.0,
             fidelity: float | None = None) -> None:
        self.told.append((arch.key, list(objectives)))

    def tell_failure(self, arch: Any, reason: str) -> None:
        self.failed.append((arch.key, reason))


def test_the_batch_adapter_tells_each_subnet_as_it_streams_in() -> None:
    space = tiny_space()
    searcher = _Recording(space=space, seed=0)
    objectives = ObjectiveSet(objectives=(Objective("accuracy", "max"),))
    adapter = BatchSearcherAdapter(searcher, objectives, batch_size=3, budget=5)
    first, second = adapter.suggest("t1"), adapter.suggest("t2")
    assert len(first["archs"]) == 3 and len(second["archs"]) == 2  # cut to the budget
    assert searcher.batches == [3, 2]  # one batch ask per trial
    keys = [space.architecture(values).key for values in first["archs"]]
    adapter.on_trial_result("t1", {"arch_key": keys[0], "accuracy": 0.5})
    assert searcher.told == [(keys[0], [-0.5])]  # before the trial completes
    adapter.on_trial_result("t1", {"arch_key": keys[1], "error": "ExportError: boom"})
    adapter.on_trial_complete("t1", error=True)
    assert searcher.failed == [(keys[1], "ExportError: boom"), (keys[2], "trial failed")]


def test_a_searcher_state_round_trip_keeps_the_batches_and_the_budget() -> None:
    space = tiny_space()
    objectives = ObjectiveSet(objectives=(Objective("accuracy", "max"),))
    adapter = BatchSearcherAdapter(_Recording(space=space, seed=0), objectives, batch_size=3,
                                   budget=5)
    keys = adapter.suggest("t1")["arch_keys"]
    adapter.on_trial_result("t1", {"arch_key": keys[0], "accuracy": 0.5})
    restored = BatchSearcherAdapter(_Recording(space=space, seed=1), objectives, batch_size=3,
                                    budget=5)
    restored.set_state(adapter.get_state())
    assert restored.pending == {"t1": keys[1:]} and restored.remaining == 2
    assert len(restored.suggest("t2")["archs"]) == 2


class _FrontLog:
    def __init__(self) -> None:
        self.fronts: list[int] = []

    def update_front(self, summary: Any) -> None:
        self.fronts.append(len(summary.front))


def _record(space: Any, index: int, accuracy: float, latency: float, ok: bool = True) -> TrialRecord:
    arch = space.sample(np.random.default_rng(index))
    return TrialRecord(trial_id=f"t-{index}", arch=arch, status="completed" if ok else "failed",
                       metrics={"accuracy": accuracy, "latency_ms@cpu-ort": latency} if ok else {})


def test_the_live_front_is_kept_per_record_and_shown_only_when_it_changed() -> None:
    space = tiny_space()
    objectives = ObjectiveSet(objectives=(Objective("accuracy", "max"),
                                          Objective("latency_ms@cpu-ort", "min")))
    log = _FrontLog()
    front = LiveFront(objectives, tracker=log, noise_aware=False, every_s=0.0)  # type: ignore[arg-type]
    front.add(_record(space, 0, 0.5, 2.0))
    front.add(_record(space, 1, 0.4, 3.0))  # dominated: nothing to show
    front.add(_record(space, 2, 0.0, 0.0, ok=False))
    front.add(_record(space, 3, 0.7, 4.0))
    assert log.fronts == [1, 2] and len(front.archive) == 2
    assert front.summary.hypervolume > 0

    throttled = LiveFront(objectives, tracker=log, noise_aware=False, every_s=3600.0)  # type: ignore[arg-type]
    for index in range(5):
        throttled.add(_record(space, index, 0.1 * index, float(index)))
    assert log.fronts == [1, 2, 1] and len(throttled.archive) == 5  # the first only, until refresh
    assert len(throttled.refresh().front) == 5


def _onnx_accuracy(path: str, x: np.ndarray, y: np.ndarray) -> float:
    compiled = get_backend("onnxruntime").compile(Path(path), options=BackendOptions(),
                                                  input_shape=(1, *x.shape[1:]))
    try:
        return evaluate_accuracy(compiled, x, y, batch_size=1)
    finally:
        compiled.close()


def _trained_front(config: SearchConfig, tmp_path: Path
                   ) -> tuple[tuple[TrialRecord, ...], SubnetSource, Dataset]:
    dataset = load_dataset(config.dataset.name, seed=config.seed)
    space = elastic_space(config, dataset.input_spec)
    checkpoint = tmp_path / "supernet.pt"
    if not checkpoint.exists():
        train_supernet(space, dataset, config.supernet.settings(config.seed), checkpoint=checkpoint)
    front = (_record(space, 0, 0.5, 1.0), _record(space, 1, 0.4, 0.5))
    return front, SubnetSource.of(config, dataset.input_spec, checkpoint), dataset


def test_the_front_is_fine_tuned_before_it_is_exported_when_asked(
        ws_config: dict[str, Any], tmp_path: Path, ray_local: None) -> None:
    plain_config = parse_config(ws_config)
    ws_config["supernet"].update(finetune_epochs=2, finetune_learning_rate=3e-3)
    config = parse_config(ws_config)
    front, source, dataset = _trained_front(config, tmp_path)

    plain = export_front(front, source=source, directory=tmp_path / "plain")
    assert finetune_front(tuple(plain), source=source, config=plain_config,
                          directory=tmp_path / "plain") == (plain, {})  # finetune_epochs 0
    tuned, failures = finetune_front(tuple(plain), source=source, config=config,
                                     directory=tmp_path / "tuned")
    assert failures == {}

    assert [r.trial_id for r in tuned] == ["t-0", "t-1"]
    for before, after in zip(plain, tuned, strict=True):
        assert set(before.metrics) == {"accuracy", "latency_ms@cpu-ort"}
        assert after.metrics["accuracy"] == before.metrics["accuracy"]  # the search's figure stays
        assert after.metrics["time_finetune_s"] > 0 and after.onnx_path != before.onnx_path
        # The exported file is the fine-tuned model: it scores what the metric says, and
        # 2 epochs from a 16-step supernet's weights score above the inherited model.
        tuned_accuracy = _onnx_accuracy(after.onnx_path, dataset.test_x, dataset.test_y)
        assert tuned_accuracy == pytest.approx(after.metrics["finetuned_accuracy"],
                                               abs=1 / len(dataset.test_y))
        assert tuned_accuracy > _onnx_accuracy(before.onnx_path, dataset.test_x, dataset.test_y)


def test_a_front_subnet_that_fails_fine_tuning_is_named_and_keeps_its_model(
        ws_config: dict[str, Any], tmp_path: Path, ray_local: None) -> None:
    ws_config["supernet"].update(finetune_epochs=1, finetune_learning_rate=1e9)
    config = parse_config(ws_config)
    front, source, _ = _trained_front(config, tmp_path)
    exported = export_front(front, source=source, directory=tmp_path / "front")
    inherited = [Path(r.onnx_path).read_bytes() for r in exported]
    tuned, failures = finetune_front(tuple(exported), source=source, config=config,
                                     directory=tmp_path / "front")
    assert tuned == exported  # no metric added, the inherited ONNX models stay
    assert [Path(r.onnx_path).read_bytes() for r in tuned] == inherited
    assert {t: f.split(":")[0] for t, f in failures.items()} == {
        r.trial_id: f"fine-tuning front subnet {r.arch.key} failed" for r in front}
    assert all("training diverged in epoch 1" in f for f in failures.values())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU: torch sees no CUDA device")
def test_the_front_is_fine_tuned_on_a_gpu_when_the_supernet_trains_on_one(
        ws_config: dict[str, Any], tmp_path: Path) -> None:
    import ray

    ws_config["supernet"].update(finetune_epochs=1, device="cuda")
    config = parse_config(ws_config)
    front, source, _ = _trained_front(config, tmp_path)
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False,
             log_to_driver=False)
    try:
        exported = export_front(front, source=source, directory=tmp_path / "front")
        tuned, failures = finetune_front(tuple(exported), source=source, config=config,
                                         directory=tmp_path / "front")
    finally:
        ray.shutdown()
    assert failures == {} and all(0 < r.metrics["finetuned_accuracy"] <= 1 for r in tuned)


def test_fine_tuning_settings_are_checked(ws_config: dict[str, Any]) -> None:
    assert parse_config(ws_config).supernet.finetune_settings(0) is None
    ws_config["supernet"]["finetune_epochs"] = -1
    with pytest.raises(ConfigError, match="finetune_epochs"):
        parse_config(ws_config)


def test_earlier_subnets_come_from_the_journal_of_the_last_search_of_that_name(
        ws_config: dict[str, Any]) -> None:
    config = parse_config(ws_config)
    assert earlier_subnets(config) == []
    space = tiny_space()
    journal = Journal(output_dir=config.output_dir)
    for search_id, name in (("old", config.name), ("other", "another"), ("new", config.name)):
        journal.append({"kind": "search", "search_id": search_id, "name": name})
        for index in range(2):
            record = _record(space, index, 0.5, 1.0, ok=search_id != "new" or index == 0)
            journal.append(trial_entry(search_id, replace(record, trial_id=f"{search_id}-{index}"),
                                       None))
    journal.append(trial_entry("new", replace(_record(space, 1, 0.6, 1.0), trial_id="new-1"), None))
    found = {record.trial_id: record for record in earlier_subnets(config)}
    assert sorted(found) == ["new-0", "new-1"]
    assert found["new-1"].ok and found["new-1"].metrics["accuracy"] == 0.6  # the latest record


def _partly_done_trial(config: Any, experiment: Path, batch: int) -> bool:
    """Whether Tune's newest saved searcher state has a trial with some subnets told."""
    if not list(experiment.glob("searcher-state-*.pkl")):
        return False
    space = elastic_space(config, DIGITS)
    adapter = BatchSearcherAdapter(RandomSearcher(space=space, seed=0), config.objective_set(),
                                   batch_size=batch, budget=0)
    try:
        adapter.restore_from_dir(str(experiment))
    except (EOFError, OSError, pickle.UnpicklingError):  # caught mid-write
        return False
    return any(0 < len(keys) < batch for keys in adapter.pending.values())


@pytest.mark.slow
@pytest.mark.integration
def test_a_killed_weight_sharing_search_resumes_without_evaluating_finished_subnets(
        ws_config: dict[str, Any], tmp_path: Path, ray_local: None) -> None:
    budget, batch = 9, 3
    ws_config["budget"] = {"candidates": budget}
    ws_config["supernet"]["subnets_per_trial"] = batch
    # Each subnet is measured for at least a second (two targets), so the kill lands mid-trial.
    ws_config["timing"] = {**ws_config["timing"], "min_seconds": 0.5}
    config = parse_config(ws_config)
    path = tmp_path / "ws.yaml"
    path.write_text(yaml.safe_dump(ws_config))
    experiment = Path(ExperimentDir.of(config).path)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(path)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:  # killed once Tune's saved state holds a trial with part of its subnets done
        deadline = time.monotonic() + 300
        while driver.poll() is None and time.monotonic() < deadline:
            if _partly_done_trial(config, experiment, batch):
                break
            time.sleep(0.1)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        for pid in session_members(driver.pid):
            os.kill(pid, signal.SIGKILL)
    before = {r.trial_id: r for r in earlier_subnets(config) if r.ok}
    assert 0 < len(before) < budget, (tmp_path / "driver.log").read_text()[-3000:]

    evaluated: list[str] = []
    result = run_search(config, tracker=MlflowTracker.from_config(config), resume=True,
                        on_progress=lambda progress: evaluated.append(progress.last.trial_id))

    assert not set(evaluated) & set(before)  # a finished subnet is not evaluated again
    assert len(result.records) == budget and all(r.ok for r in result.records)
    assert len({r.arch.key for r in result.records}) == budget
    by_id = {r.trial_id: r for r in result.records}
    for trial, record in before.items():  # as recorded (only the front's latencies are re-timed)
        assert {k: v for k, v in by_id[trial].metrics.items() if "@" not in k} == \
            {k: v for k, v in record.metrics.items() if "@" not in k}
    assert result.summary.front and all(r.onnx_path for r in result.summary.front)
    assert result.confirmation is not None and result.confirmation.confirmed
