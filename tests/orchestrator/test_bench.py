"""``paretonas bench``: compare searchers on a table file; record one from a real search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.replay import Table, load_table, save_table
from search_spaces import InputSpec, create_space


def _toy_table(path: Path) -> Path:
    space = create_space("mlp", input_spec=InputSpec((4,), 3))
    entries = {}
    for layers in (1, 2, 3):
        for units in (32, 64, 128, 256):
            for activation in ("relu", "gelu"):
                arch = space.architecture({"num_layers": layers, "hidden_units": units,
                                           "activation": activation})
                entries[arch] = {"accuracy": 1 - 1 / (layers * units),
                                 "latency_ms@cpu": layers * units / 100 + (activation == "gelu"),
                                 "params": float(layers * units)}
    save_table(Table(space=space, entries=entries, name="toy"), path)
    return path


def test_compare_prints_the_table_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    table = _toy_table(tmp_path / "toy.json")
    png = tmp_path / "curves.png"
    assert main(["bench", "compare", str(table), "--budget", "12", "--seeds", "3",
                 "--searcher", "random", "--searcher", "nsga2", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "toy: hypervolume / true front's (accuracy, latency_ms@cpu)" in out
    assert "nsga2" in out and "@12" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = str(_toy_table(tmp_path / "toy.json"))
    assert main(["bench", "compare", table, "--searcher", "bayes"]) == 2
    assert "unknown searcher 'bayes'; known:" in capsys.readouterr().err
    assert main(["bench", "compare", table, "--objective", "speed:max"]) == 2
    assert "unknown metric; known: accuracy, latency_ms@cpu, params" in capsys.readouterr().err
    assert main(["bench", "compare", str(tmp_path / "missing.json")]) == 2
    assert "cannot read table" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.integration
def test_record_a_space_then_compare_on_it(tiny_config: dict[str, Any], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Real training and timing of a whole 4-architecture space, then a replay on it."""
    tiny_config["space"] = {"name": "mlp", "options": {"max_layers": 1, "hidden_units": [16, 32]}}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config))
    out = tmp_path / "recorded.json"
    assert main(["bench", "record", str(config), "--out", str(out), "--sample", "5"]) == 2
    assert "--sample must be in 1..4" in capsys.readouterr().err
    assert main(["bench", "record", str(config), "--out", str(out)]) == 0
    table = load_table(out)
    assert len(table) == 4
    assert {"accuracy", "latency_ms@cpu-ort", "params"} <= set(table.metrics)
    assert all(0 <= row["accuracy"] <= 1 and row["latency_ms@cpu-ort"] > 0
               for row in table.rows.values())
    assert main(["bench", "compare", str(out), "--budget", "4", "--seeds", "2",
                 "--searcher", "random"]) == 0
    assert "1.000 ±" in capsys.readouterr().out  # 4 of 4 evaluated: the whole true front
