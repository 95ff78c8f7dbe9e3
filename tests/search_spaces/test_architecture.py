"""Architectures: frozen, hashable values with a key stable across processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from search_spaces import Architecture, SearchSpaceError
from tests.conftest import ROOT

VALUES = {"num_layers": 2, "hidden_units": 64, "activation": "relu"}
#: The key of ``VALUES`` in space "mlp"; changing the key format would orphan stored runs.
KNOWN_KEY = "680e25401179"


def test_key_is_stable_across_runs() -> None:
    assert Architecture.from_dict("mlp", VALUES).key == KNOWN_KEY


def test_key_is_stable_across_processes() -> None:
    code = (
        "from search_spaces import Architecture\n"
        "print(Architecture.from_dict('s', {'lr': 0.1, 'flag': True, 'name': 'x', 'n': 3}).key)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different str hashing than ours
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env=env, cwd=ROOT)
    here = Architecture.from_dict("s", {"n": 3, "name": "x", "flag": True, "lr": 0.1}).key
    assert result.stdout.strip() == here


def test_key_and_equality_ignore_value_order() -> None:
    forward = Architecture.from_dict("mlp", VALUES)
    backward = Architecture.from_dict("mlp", dict(reversed(VALUES.items())))
    assert forward == backward and forward.key == backward.key
    assert hash(forward) == hash(backward) and len({forward, backward}) == 1


def test_key_depends_on_space_and_values() -> None:
    arch = Architecture.from_dict("mlp", VALUES)
    assert Architecture.from_dict("other", VALUES).key != arch.key
    assert Architecture.from_dict("mlp", {**VALUES, "num_layers": 3}) != arch


def test_mapping_access() -> None:
    arch = Architecture.from_dict("mlp", VALUES)
    assert arch["hidden_units"] == 64
    assert list(arch) == sorted(VALUES)
    assert arch.as_dict() == VALUES
    with pytest.raises(SearchSpaceError, match=f"architecture {arch.key} has no choice 'depth'"):
        arch["depth"]
    with pytest.raises(AttributeError):
        arch.space = "x"  # type: ignore[misc]
