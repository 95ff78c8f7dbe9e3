"""The dependency direction holds: each package imports only what it may."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT

FORBIDDEN = {
    "search_spaces": {"ray", "mlflow", "evaluators", "hardware_pool", "orchestrator"},
    "evaluators": {"ray", "mlflow", "hardware_pool", "orchestrator"},
    "hardware_pool": {"mlflow", "orchestrator"},
}


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        modules: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = modules
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_the_dependency_direction(package: str) -> None:
    offenders = {
        path: sorted(modules & FORBIDDEN[package])
        for path, modules in _imports(package).items()
        if modules & FORBIDDEN[package]
    }
    assert not offenders, f"{package} must not import {sorted(FORBIDDEN[package])}: {offenders}"


#: The orchestrator's modules that drive Ray (Tune, sessions, jobs); the rest stay Ray-free.
RAY_MODULES = {
    "orchestrator/tune_driver.py",
    "orchestrator/tune_adapter.py",
    "orchestrator/trial_events.py",
    "orchestrator/ray_session.py",
    "orchestrator/weight_sharing.py",
    "orchestrator/jobs.py",
    "orchestrator/schedulers.py",
}


def test_ray_stays_in_the_pool_and_the_tune_driver() -> None:
    users = {path for path, modules in _imports("orchestrator").items() if "ray" in modules}
    assert users == RAY_MODULES
