"""CLI commands that need no Ray: validate, list, and error printing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from hardware_pool.affinity import pin_process, thread_affinities
from orchestrator.candidate import pin_away_from
from orchestrator.cli import main
from tests.conftest import TINY_CONFIG


def test_validate_reports_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(TINY_CONFIG))
    assert main(["validate", str(path), "--set", "budget.candidates=7"]) == 0
    assert "valid (2 targets, 3 objectives, 7 candidates)" in capsys.readouterr().out


def test_validate_refuses_bad_yaml_without_traceback(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("space: {name: conv-classifier\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not valid YAML" in err and "Traceback" not in err


def test_list_shows_every_plugin_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("conv-classifier", "mlp", "nsga2", "random", "digits", "onnxruntime", "openvino"):
        assert name in out
    assert "available on cpu" in out


def test_trials_keep_off_the_pool_cores() -> None:
    before = os.sched_getaffinity(0)
    if len(before) < 2:
        pytest.skip("needs at least 2 cores to leave one free")
    last = max(before)
    try:
        pin_away_from({"this-node": [last]}, "this-node")
        assert all(set(cores) == before - {last} for cores in thread_affinities().values())
        pin_away_from({"other-node": [min(before)]}, "this-node")  # other nodes: untouched
        assert all(set(cores) == before - {last} for cores in thread_affinities().values())
    finally:
        pin_process(before)
