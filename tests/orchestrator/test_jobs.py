"""Searches as Ray jobs: planning a submission, and a real ``ray start --head`` cluster."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.config import load_config, parse_config
from orchestrator.errors import ClusterError, ConfigError
from orchestrator.jobs import (
    CONFIG_NAME,
    JobsClient,
    check_cluster_paths,
    dashboard_address,
    plan_submission,
)
from orchestrator.preflight import cluster_shortfalls
from orchestrator.ray_session import ray_session
from tests.conftest import TINY_CONFIG
from tests.elastic_fixtures import TINY_OPTIONS
from tests.orchestrator.ray_head import LocalHead, free_port

LOCAL_SPACE = '''
from search_spaces import Categorical, SearchSpace
from torch import nn


class Linear(SearchSpace):
    def choices(self):
        return [Categorical("bias", (True, False)), Categorical("hidden", (8, 16))]

    def build(self, arch):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, arch["hidden"], bias=arch["bias"]),
                             nn.ReLU(), nn.Linear(arch["hidden"], 10))
'''


def cluster_config(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """A tiny digits search whose results (absolute paths) the job on this machine can reach."""
    config = copy.deepcopy(TINY_CONFIG)
    config.pop("ray")
    config["targets"] = [{"name": "cpu-ort", "backend": "onnxruntime"}]
    config["objectives"] = {"accuracy": "max", "latency_ms@cpu-ort": "min"}
    config["searcher"] = {"name": "random"}
    config["budget"] = {"candidates": 2}
    config["tracking"] = {"uri": f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}",
                          "experiment": "cluster"}
    config["output_dir"] = str(tmp_path / "results")
    config.update(changes)
    return config


def write(tmp_path: Path, config: dict[str, Any], name: str = "search.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def no_auth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No cluster address from the environment.

    ``RAY_AUTH_MODE`` is left alone: once this process has used a token Ray keeps it
    cached, so the mode stays ``token`` afterwards (as after any embedded ``ray.init``),
    and clusters started later by this process inherit the same mode.
    """
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)


# --- planning (no cluster) ---------------------------------------------------------------


def test_plan_ships_the_config_and_a_local_space_module(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_linear_space.py").write_text(LOCAL_SPACE)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = parse_config(cluster_config(tmp_path, space={"name": "my_linear_space:Linear"},
                                         budget={"candidates": 3}))
    submission = plan_submission(config, staging_dir=tmp_path / "stage", pip=["rich"])

    assert (tmp_path / "stage" / "my_linear_space.py").read_text() == LOCAL_SPACE
    assert "py_modules" not in submission.runtime_env
    assert submission.runtime_env["pip"] == ["rich"]
    assert submission.runtime_env["working_dir"] == str(tmp_path / "stage")
    assert submission.entrypoint == f"python -m orchestrator run {CONFIG_NAME}"
    assert submission.job_id.startswith("paretonas-tiny-")
    shipped = load_config(tmp_path / "stage" / CONFIG_NAME)
    # the same search runs on the cluster (overrides included), on the cluster's Ray
    assert shipped.ray.address == "auto"
    assert shipped.model_copy(update={"ray": config.ray}) == config


def test_plan_ships_nothing_for_installed_spaces_unless_asked(tmp_path: Path) -> None:
    config = parse_config(cluster_config(tmp_path))
    assert "py_modules" not in plan_submission(config, staging_dir=tmp_path / "a").runtime_env
    shipped = plan_submission(config, staging_dir=tmp_path / "b", ship_code=True,
                              job_id="mine").runtime_env["py_modules"]
    assert [Path(p).name for p in shipped] == ["search_spaces", "evaluators", "hardware_pool",
                                               "orchestrator"]


@pytest.mark.parametrize("changes, message", [
    ({"tracking": {"uri": "sqlite:///mlflow.db"}}, "tracking.uri 'sqlite:///mlflow.db' is relative"),
    ({"output_dir": "paretonas-results"}, "output_dir 'paretonas-results' is relative"),
    ({"mode": "weight_sharing", "supernet": {"checkpoint": "supernet.pt"},
      "space": {"name": "elastic-mobilenet-v3", "options": TINY_OPTIONS}},
     "supernet.checkpoint 'supernet.pt' is relative"),
])
def test_relative_paths_are_refused_before_submission(tmp_path: Path, changes: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_cluster_paths(parse_config(cluster_config(tmp_path, **changes)))


def test_dashboard_address(no_auth_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert dashboard_address("http://head:8265/") == "http://head:8265"
    with pytest.raises(ClusterError, match="pass --address"):
        dashboard_address(None)
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://10.0.0.1:8265")
    assert dashboard_address(None) == "http://10.0.0.1:8265"
    with pytest.raises(ClusterError, match="must be the head's dashboard"):
        dashboard_address("head:6379")


def test_unreachable_cluster_is_one_clear_error(no_auth_env: None, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    assert main(["jobs", "list", "--address", address]) == 2
    assert main(["submit", str(write(tmp_path, cluster_config(tmp_path))), "--address", address]) == 2
    err = capsys.readouterr().err
    assert err.count(f"cannot reach the Ray cluster at {address}") == 2
    assert "Traceback" not in err


def test_a_trial_no_single_node_can_hold_is_named(tmp_path: Path) -> None:
    config = parse_config(cluster_config(tmp_path, budget={
        "candidates": 2, "trial_cpus": 3, "trial_gpus": 1, "trial_resources": {"paretonas/trainer": 1}}))
    # the cluster has all of it in total, but a trial runs on one node
    [shortfall] = cluster_shortfalls(config, [{"CPU": 2, "GPU": 1, "paretonas/trainer": 1},
                                              {"CPU": 4}])
    assert "what each trial (budget.trial_cpus, trial_gpus, trial_resources) asks for " \
        "(CPU: 3, GPU: 1, paretonas/trainer: 1)" in shortfall
    assert cluster_shortfalls(config, [{"CPU": 2}, {"CPU": 4, "GPU": 8, "paretonas/trainer": 1}]) == []


# --- a real cluster ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def head() -> Iterator[LocalHead]:
    cluster = LocalHead(num_cpus=2)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.slow
@pytest.mark.integration
def test_submit_follow_stop_and_find_results_in_mlflow(
    head: LocalHead, no_auth_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = cluster_config(tmp_path)
    search = write(tmp_path, config)
    long = write(tmp_path, cluster_config(tmp_path / "long", budget={"candidates": 50},
                                          name="long"), "long.yaml")
    assert main(["submit", str(search), "--address", head.dashboard, "--job-id", "tiny-1"]) == 0
    assert main(["submit", str(long), "--address", head.dashboard, "--job-id", "long-1"]) == 0
    assert "submitted tiny-1" in capsys.readouterr().out

    # The second job is stopped while it runs and ends STOPPED.
    client = JobsClient(address=head.dashboard)
    client.wait("long-1", timeout_s=60, until=frozenset({"RUNNING"}))
    assert main(["jobs", "stop", "long-1", "--address", head.dashboard]) == 0
    assert client.wait("long-1", timeout_s=60).status == "STOPPED"

    # The first one is followed to the end: its log streams, then its final status.
    assert main(["jobs", "logs", "tiny-1", "--follow", "--address", head.dashboard]) == 0
    followed = capsys.readouterr().out
    assert "Pareto front" in followed and "tiny-1: SUCCEEDED" in followed
    assert main(["jobs", "status", "tiny-1", "--address", head.dashboard]) == 0
    assert "tiny-1: SUCCEEDED" in capsys.readouterr().out
    assert main(["jobs", "logs", "tiny-1", "--address", head.dashboard]) == 0
    assert "of 2 candidates" in capsys.readouterr().out
    assert main(["jobs", "list", "--address", head.dashboard]) == 0
    listing = capsys.readouterr().out
    assert "tiny-1" in listing and "STOPPED" in listing

    mlflow = MlflowClient(tracking_uri=config["tracking"]["uri"])
    experiment = mlflow.get_experiment_by_name("cluster")
    runs = mlflow.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("paretonas.kind") == "search"
               and r.info.run_name.startswith("tiny")]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 2 and all(r.data.metrics["latency_ms/cpu-ort"] > 0 for r in children)


@pytest.mark.slow
@pytest.mark.integration
def test_cluster_bad_input(head: LocalHead, no_auth_env: None, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                           caplog: pytest.LogCaptureFixture) -> None:
    assert main(["jobs", "status", "no-such-job", "--address", head.dashboard]) == 2
    assert "no job 'no-such-job' on" in capsys.readouterr().err

    # Connecting a search whose trials no node of this cluster can hold warns at once.
    config = parse_config(cluster_config(tmp_path, ray={"address": head.gcs}, budget={
        "candidates": 2, "trial_resources": {"paretonas/trainer": 1}}))
    with caplog.at_level(logging.WARNING, logger="orchestrator.ray_session"), ray_session(config):
        pass
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "no node of the Ray cluster has what each trial (budget.trial_cpus, trial_gpus, "
        "trial_resources) asks for (CPU"]
    assert "paretonas/trainer: 1" in caplog.records[0].getMessage()

    # A space module that imports here but not on the cluster (its helper is not shipped).
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "only_here_helper.py").write_text("WIDTH = 8\n")
    (tmp_path / "needs_helper_space.py").write_text("import only_here_helper\n" + LOCAL_SPACE)
    monkeypatch.syspath_prepend(str(helpers))
    monkeypatch.syspath_prepend(str(tmp_path))
    search = write(tmp_path, cluster_config(tmp_path, space={"name": "needs_helper_space:Linear"}))
    assert main(["submit", str(search), "--address", head.dashboard, "--job-id", "bad-module",
                 "--follow"]) == 1
    out = capsys.readouterr().out
    assert "needs_helper_space' needs 'only_here_helper', which is not installed" in out
    assert "bad-module: FAILED" in out
