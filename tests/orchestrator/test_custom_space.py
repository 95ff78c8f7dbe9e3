"""The README's custom-space flow, as a new user runs it: a module in a folder, ``cd`` there.

No environment variable points at the folder: the driver and the Ray workers import
the module because it is in the current directory. One candidate's ``build`` raises:
it becomes a failed trial and the search goes on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MODULE = "fh_user_spaces"
SPACE_FILE = '''
import numpy as np
from torch import nn

from search_spaces import Categorical, IntRange, SearchSpace, register_space


@register_space("fh-tiny-mlp")
class TinyMLP(SearchSpace):
    """Hidden layers and width; width 99 cannot be built (a bug in the user's space)."""

    def __init__(self, *, input_spec, widths=(8, 16, 99)):
        self.widths = tuple(widths)
        super().__init__(input_spec=input_spec)

    def choices(self):
        return [IntRange("layers", 1, 2), Categorical("width", self.widths)]

    def build(self, arch):
        if arch["width"] == 99:
            raise ValueError("width 99 is not supported")
        features = int(np.prod(self.input_spec.shape))
        layers = [nn.Flatten()]
        for _ in range(arch["layers"]):
            layers += [nn.Linear(features, arch["width"]), nn.ReLU()]
            features = arch["width"]
        layers.append(nn.Linear(features, self.input_spec.num_classes))
        return nn.Sequential(*layers)
'''


def _config(tmp_path: Path, *, space: dict[str, Any], seed: int, candidates: int,
            plugins: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": "custom", "seed": seed, **({"plugins": plugins} if plugins else {}),
        "space": space,
        "dataset": {"name": "digits"},
        "training": {"epochs": 1, "batch_size": 256},
        "targets": [{"name": "cpu-ort", "backend": "onnxruntime", "cores": [-1]}],
        "timing": {"warmup_runs": 1, "min_runs": 3, "min_seconds": 0.0},
        "objectives": {"accuracy": "max", "latency_ms@cpu-ort": "min"},
        "searcher": {"name": "random"},
        "budget": {"candidates": candidates},
        "ray": {"num_cpus": 2},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "custom"},
        "output_dir": str(tmp_path / "results"),
    }


def _seed_with_a_failing_candidate(folder: Path, candidates: int) -> int:
    """A seed whose first architecture builds (pre-flight) and a later one does not."""
    sys.path.insert(0, str(folder))
    try:
        from orchestrator.searchers import create_searcher
        from search_spaces import InputSpec, create_space

        space = create_space(f"{MODULE}:TinyMLP", input_spec=InputSpec((1, 8, 8), 10))
        for seed in range(100):
            searcher = create_searcher("random", space=space, seed=seed)
            widths = [searcher.ask()["width"] for _ in range(candidates)]
            if widths[0] != 99 and 99 in widths and widths.count(99) < candidates - 1:
                return seed
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(MODULE, None)
    raise AssertionError("no seed gives a failing candidate")


def _paretonas(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT)  # the code under test; nothing points at the space folder
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)


def test_space_module_in_the_current_directory(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / f"{MODULE}.py").write_text(textwrap.dedent(SPACE_FILE))
    seed = _seed_with_a_failing_candidate(folder, 3)

    (folder / "by_class.yaml").write_text(yaml.safe_dump(_config(
        tmp_path, space={"name": f"{MODULE}:TinyMLP"}, seed=seed, candidates=3)))
    result = _paretonas(folder, "run", "by_class.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "[1/3]" in out and "[3/3]" in out  # one line per candidate without a terminal
    assert "failed in build: ValueError: width 99 is not supported" in out
    assert "Pareto front" in out and "layers=" in out and "width=" in out  # choices shown

    # The README's module and its registered-name config, as written there.
    module = next(block for block in re.findall(r"```python\n(.*?)```", README, flags=re.S)
                  if '@register_space("tiny-mlp")' in block)
    (folder / "my_spaces.py").write_text(module)
    snippet = re.search(r"# or\n(plugins: .*?\nspace: .*?)\n", README, flags=re.S)
    assert snippet is not None, "README lost its plugins: example"
    (folder / "by_name.yaml").write_text(yaml.safe_dump({
        **_config(tmp_path, space={}, seed=seed, candidates=2), **yaml.safe_load(snippet.group(1)),
        "name": "custom-by-name"}))  # a second search: its own experiment directory
    result = _paretonas(folder, "run", "by_name.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[2/2]" in result.stdout and "Pareto front (" in result.stdout

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("custom")
    runs = client.search_runs([experiment.experiment_id], "tags.`paretonas.kind` = 'candidate'")
    errors = [run.data.tags.get("paretonas.error", "") for run in runs]
    assert len(runs) == 5
    assert sum("width 99 is not supported" in error for error in errors) >= 1
    assert sum(run.info.status == "FINISHED" for run in runs) >= 3
