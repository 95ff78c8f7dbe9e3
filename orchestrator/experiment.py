"""A search's experiment directory: ``<output_dir>/<name>``, where Tune and paretonas keep state.

Tune writes its experiment there (trials, checkpoints, searcher state); paretonas adds
the config it ran and the MLflow parent run, which is what ``paretonas resume`` needs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from orchestrator.config import SearchConfig, load_config
from orchestrator.errors import SearchError

CONFIG_FILE = "paretonas-config.yaml"
STATE_FILE = "paretonas-search.json"
TUNE_STATE = "tuner.pkl"


def storage_path(config: SearchConfig) -> str:
    """Where Tune keeps experiments: ``output_dir`` made absolute."""
    return str(Path(config.output_dir).expanduser().resolve())


@dataclass(frozen=True)
class ExperimentDir:
    """The experiment directory of one search (a local or shared path)."""

    path: str

    @classmethod
    def of(cls, config: SearchConfig) -> ExperimentDir:
        return cls(f"{storage_path(config)}/{config.name}")

    @property
    def local(self) -> Path:
        return Path(self.path)

    def exists(self) -> bool:
        return (self.local / TUNE_STATE).exists() or (self.local / STATE_FILE).exists()

    def check_new(self, *, overwrite: bool) -> None:
        """Refuse to start over silently where an earlier run left its experiment."""
        if not self.exists():
            return
        if overwrite:
            shutil.rmtree(self.path)
            return
        raise SearchError(f"the experiment directory {self.path} exists (an earlier run of this "
                          f"search): continue it with `paretonas resume {self.path}`, start over "
                          f"with --overwrite, or choose another name with --set name=NEW")

    def save(self, config: SearchConfig, *, run_id: str | None) -> None:
        """Keep the config and the tracking run next to Tune's state (atomically)."""
        local = self.local
        local.mkdir(parents=True, exist_ok=True)
        _write_atomic(local / CONFIG_FILE,
                      yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        _write_atomic(local / STATE_FILE, json.dumps(
            {"mlflow_run_id": run_id, "tracking_uri": config.tracking.uri,
             "experiment": config.tracking.experiment}, indent=2))

    def load(self) -> tuple[SearchConfig, str | None]:
        """The config this experiment ran with and its MLflow parent run id."""
        local = self.local
        if not (local / CONFIG_FILE).is_file() or not (local / TUNE_STATE).is_file():
            raise SearchError(f"{self.path} is not a paretonas experiment directory (no {CONFIG_FILE} "
                              f"and {TUNE_STATE}); give OUTPUT_DIR/NAME of an earlier run")
        config = load_config(local / CONFIG_FILE)
        state = json.loads((local / STATE_FILE).read_text()) if (local / STATE_FILE).is_file() else {}
        return config, state.get("mlflow_run_id")


def _write_atomic(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)
