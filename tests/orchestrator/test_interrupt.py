"""Ctrl-C during a search: it says so, exits 130, marks the run KILLED, keeps what finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_sigint_stops_the_search_honestly(tiny_config: dict[str, Any], tmp_path: Path) -> None:
    tiny_config["space"] = {"name": "mlp", "options": {"max_layers": 1, "hidden_units": [8, 16]}}
    tiny_config["targets"] = [{"name": "cpu-ort", "backend": "onnxruntime", "cores": [-1]}]
    tiny_config["objectives"] = {"accuracy": "max", "latency_ms@cpu-ort": "min"}
    tiny_config["searcher"] = {"name": "random"}
    tiny_config["budget"] = {"candidates": 30}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(path)],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert driver.stdout is not None
        deadline = time.monotonic() + 240
        for line in driver.stdout:  # one line per finished candidate (no terminal)
            if line.startswith("[1/30]") or time.monotonic() > deadline:
                break
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, out + err
    assert "Traceback" not in err
    assert "search interrupted:" in err and "of 30 candidates finished and are kept" in err
    experiments = list((tmp_path / "results").glob("tiny"))  # Tune's experiment folder: OUTPUT_DIR/NAME
    assert len(experiments) == 1
    assert f"resume with: paretonas resume {experiments[0]}" in err
    assert "Pareto front" not in out

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tiny_config["tracking"]["uri"])
    experiment = client.get_experiment_by_name("tests")
    parent = client.search_runs([experiment.experiment_id], "tags.`paretonas.kind` = 'search'")
    assert [run.info.status for run in parent] == ["KILLED"]
    children = client.search_runs([experiment.experiment_id], "tags.`paretonas.kind` = 'candidate'")
    assert 1 <= len(children) < 30
    assert all(run.info.status == "FINISHED" and "accuracy" in run.data.metrics for run in children)
    done = int(err.split("search interrupted: ")[1].split(" of")[0])
    assert done == len(children)
