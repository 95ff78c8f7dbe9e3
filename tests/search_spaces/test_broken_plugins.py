"""A third-party plugin whose entry point raises on load breaks only itself."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml

from search_spaces import SPACES, UnknownNameError
from search_spaces.registry import Registry
from tests.conftest import TINY_CONFIG


@pytest.fixture
def broken_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed-looking package publishing a space whose module raises on import."""
    info = tmp_path / "broken_spaces_dist-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-spaces-dist\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[paretonas.spaces]\nbroken-space = fh_broken_plugin:Space\n")
    (tmp_path / "fh_broken_plugin.py").write_text("raise ImportError('needs libfoo.so')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fh_broken_plugin", raising=False)
    return tmp_path


def test_registry_records_the_broken_plugin(broken_distribution: Path) -> None:
    registry: Registry[object] = Registry("search space", entry_point_group="paretonas.spaces")
    registry.register("fine", object())
    assert registry.names() == ["fine"]
    reason = registry.unavailable()["broken-space"]
    assert "fh_broken_plugin:Space" in reason and "ImportError: needs libfoo.so" in reason
    assert "fix or uninstall broken-spaces-dist" in reason
    with pytest.raises(UnknownNameError, match="search space 'broken-space' is unavailable: "):
        registry.get("broken-space")


def test_list_and_validate_still_work(broken_distribution: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.cli import main

    monkeypatch.setattr(SPACES, "_entry_points_loaded", False)  # look again, as a new process
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "broken-space" in out and "unavailable" in out and "conv-classifier" in out
    path = broken_distribution / "c.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(TINY_CONFIG)))
    assert main(["validate", str(path)]) == 0
    broken = copy.deepcopy(TINY_CONFIG)
    broken["space"] = {"name": "broken-space"}
    path.write_text(yaml.safe_dump(broken))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "'broken-space' is unavailable" in err and "needs libfoo.so" in err
