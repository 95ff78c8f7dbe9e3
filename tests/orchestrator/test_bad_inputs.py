"""Bad inputs a new user makes: each is caught before anything trains, in one line.

Every case runs ``paretonas validate`` and ``paretonas run`` on the same input and
checks: a non-zero exit, one line on stderr naming the cause and the fix, no
traceback, nothing written (no results folder, no tracking store), and the same
verdict from both commands (they share the pre-flight checks).
"""

from __future__ import annotations

import copy
import socket
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.config import load_config
from orchestrator.preflight import preflight
from tests.conftest import TINY_CONFIG

Config = dict[str, Any]

SPACE_HEADER = """
import numpy as np
from torch import nn
from search_spaces import Categorical, IntRange, SearchSpace, register_space
"""

GOOD_SPACE = SPACE_HEADER + """
class {name}(SearchSpace):
    def __init__(self, *, input_spec, widths=(8, 16)):
        self.widths = tuple(widths)
        super().__init__(input_spec=input_spec)

    def choices(self):
        return [Categorical("width", self.widths)]

    def build(self, arch):
        features = int(np.prod(self.input_spec.shape))
        return nn.Sequential(nn.Flatten(), nn.Linear(features, arch["width"]), nn.ReLU(),
                             nn.Linear(arch["width"], {classes}))
"""

NO_CHOICES = SPACE_HEADER + """
class Empty(SearchSpace):
    def choices(self):
        return []

    def build(self, arch):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, self.input_spec.num_classes))
"""

BROKEN_FORWARD = SPACE_HEADER + """
class Broken(SearchSpace):
    def choices(self):
        return [IntRange("width", 4, 8)]

    def build(self, arch):
        return nn.Sequential(nn.Linear(3, arch["width"]))  # ignores the input shape
"""

NOT_A_MODULE = SPACE_HEADER + """
class Weird(SearchSpace):
    def choices(self):
        return [IntRange("width", 4, 8)]

    def build(self, arch):
        return "a network"
"""

STRICT_INIT = SPACE_HEADER + """
class Strict(SearchSpace):
    def __init__(self, *, input_spec, depth=2):
        if depth > 4:
            raise ValueError(f"depth must be <= 4, got {depth}")
        super().__init__(input_spec=input_spec)

    def choices(self):
        return [IntRange("width", 4, 8)]

    def build(self, arch):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, self.input_spec.num_classes))
"""

ABSTRACT = SPACE_HEADER + """
class Half(SearchSpace):
    def choices(self):
        return [IntRange("width", 4, 8)]
"""

REGISTERED = SPACE_HEADER + """
@register_space("bad-inputs-registered")
class Registered(SearchSpace):
    def choices(self):
        return [IntRange("width", 4, 8)]

    def build(self, arch):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, self.input_spec.num_classes))
"""


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it, and words its error must contain (cause, fix)."""

    id: str
    change: Callable[[Config, Path], Any] | None = None
    expect: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    raw_yaml: str | None = None  # written instead of the config


def _set(path: str, value: Any) -> Callable[[Config, Path], None]:
    """A change that sets the dotted ``path`` (numbers index lists) to ``value``."""
    def change(config: Config, tmp: Path) -> None:
        *parents, leaf = path.split(".")
        node: Any = config
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[int(leaf) if isinstance(node, list) else leaf] = value
    return change


def _space(name: str, **options: Any) -> Callable[[Config, Path], None]:
    def change(config: Config, tmp: Path) -> None:
        config["space"] = {"name": name, "options": options}
    return change


def _weight_sharing(**supernet: Any) -> Callable[[Config, Path], None]:
    """Weight-sharing mode on the built-in elastic space, with these supernet settings."""
    def change(config: Config, tmp: Path) -> None:
        config.update(mode="weight_sharing", space={"name": "elastic-mobilenet-v3"},
                      supernet=supernet)
    return change


def _target(**fields: Any) -> Callable[[Config, Path], None]:
    def change(config: Config, tmp: Path) -> None:
        config["targets"] = [{"name": "t", "backend": "onnxruntime", **fields}]
        config["objectives"] = {"accuracy": "max", "latency_ms@t": "min"}
    return change


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _file_in_the_way(config: Config, tmp: Path) -> None:
    (tmp / "taken").write_text("a file, not a folder")
    config["output_dir"] = str(tmp / "taken" / "results")


def _folder_as_db(config: Config, tmp: Path) -> None:
    (tmp / "store.db").mkdir()
    config["tracking"]["uri"] = f"sqlite:///{tmp / 'store.db'}"


def _no_ray_client(config: Config, tmp: Path) -> Callable[[pytest.MonkeyPatch], None]:
    config["ray"] = {"address": "ray://head.invalid:10001"}
    return lambda monkeypatch: monkeypatch.setitem(sys.modules, "grpc", None)


CASES = [
    # --- the file itself, and --set
    Case("yaml-syntax", raw_yaml="name: tiny\nspace: {name: mlp\n",
         expect=("config.yaml: not valid YAML", "line 3", "fix the YAML syntax")),
    Case("yaml-scalar", raw_yaml="42\n", expect=("top level must be a mapping",)),
    Case("yaml-list", raw_yaml="- space\n- targets\n", expect=("top level must be a mapping",)),
    Case("unknown-top-key", _set("budjet", {}), ("unknown key(s) ['budjet']", "allowed:")),
    Case("unknown-section-key", _set("training.epoch", 2), ("training", "unknown key(s) ['epoch']",
                                                            "allowed:")),
    Case("missing-space", lambda c, t: c.pop("space"), ("space: Field required",)),
    Case("missing-targets", lambda c, t: c.pop("targets"), ("targets: Field required",)),
    Case("zero-candidates", _set("budget.candidates", 0), ("budget.candidates",
                                                           "greater than or equal to 1")),
    Case("negative-lr", _set("training.learning_rate", -1), ("training.learning_rate",
                                                             "greater than 0")),
    Case("epochs-not-int", _set("training.epochs", "many"), ("training.epochs", "valid integer")),
    Case("override-no-equals", overrides=("budget.candidates",),
         expect=("budget.candidates", "must look like section.key=value")),
    Case("override-bad-index", overrides=("targets.7.threads=2",),
         expect=("targets is a list of 2", "use an index 0..1")),
    Case("override-through-scalar", overrides=("seed.value=2",),
         expect=("seed is a int", "override it as a whole")),
    # --- names
    Case("unknown-backend", _target(backend="tensorflow"),
         ("unknown backend 'tensorflow'", "known: onnxruntime, openvino")),
    Case("unknown-precision", _target(precision="fp64"), ("targets.0.precision", "'fp32'")),
    Case("unknown-direction", _set("objectives", {"accuracy": "maximise"}),
         ("objectives.accuracy", "'min' or 'max'")),
    Case("unknown-objective-metric", _set("objectives", {"acc": "max"}),
         ("objectives.acc: unknown metric", "known: accuracy")),
    Case("unknown-constraint-metric", _set("constraints", {"latency_ms@gpu": {"max": 1}}),
         ("constraints.latency_ms@gpu: unknown metric", "known:")),
    Case("constraint-without-bound", _set("constraints", {"accuracy": {}}),
         ("constraints.accuracy", "give at least one of min, max")),
    Case("duplicate-targets", lambda c, t: c["targets"].append(dict(c["targets"][0])),
         ("duplicate target name(s) ['cpu-ort']",)),
    Case("mixed-core-signs", _set("targets.0.cores", [0, -1]),
         ("cores must be all >= 0 or all negative",)),
    Case("unknown-searcher", _set("searcher.name", "bayes"),
         ("unknown searcher 'bayes'", "known: nevergrad, nsga2, optuna, predictor, pymoo-nsga2, "
                                      "random, regularized")),
    Case("unknown-dataset", _set("dataset.name", "imagenet"),
         ("unknown dataset 'imagenet'", "known: digits")),
    Case("unknown-space", _space("resnet"), ("unknown search space 'resnet'",
                                             "known: conv-classifier,", "plugins: [module]")),
    # --- custom spaces and plugins
    Case("space-module-missing", _space("no_such_spaces:Space"),
         ("cannot import search space module 'no_such_spaces'",
          "run paretonas from the folder that holds no_such_spaces.py")),
    Case("space-module-raises", _space("raising_spaces:Space"),
         ("'raising_spaces' raised while being imported", "RuntimeError: boom", "fix the module"),
         files={"raising_spaces.py": "raise RuntimeError('boom')\n"}),
    Case("space-module-missing-dependency", _space("needy_spaces:Space"),
         ("needs 'not_installed_dep'", "pip install it"),
         files={"needy_spaces.py": "import not_installed_dep\n"}),
    Case("space-attribute-missing", _space("good_spaces:Missing"),
         ("has no attribute 'Missing'", "search spaces it defines: Good"),
         files={"good_spaces.py": GOOD_SPACE.format(name="Good", classes=10)}),
    Case("space-attribute-not-callable", _space("const_spaces:VALUE"),
         ("const_spaces:VALUE is not a SearchSpace class",), files={"const_spaces.py": "VALUE = 3\n"}),
    Case("space-unknown-option", _space("conv-classifier", num_stagez=2),
         ("rejected its options", "num_stagez", "accepted:")),
    Case("custom-space-unknown-option", _space("good_spaces2:Good", width=[8]),
         ("rejected its options", "accepted: widths"),
         files={"good_spaces2.py": GOOD_SPACE.format(name="Good", classes=10)}),
    Case("space-constructor-raises", _space("strict_spaces:Strict", depth=9),
         ("failed to construct", "depth must be <= 4", "fix space.options"),
         files={"strict_spaces.py": STRICT_INIT}),
    Case("space-missing-build", _space("half_spaces:Half"),
         ("does not implement build", "define it"), files={"half_spaces.py": ABSTRACT}),
    Case("space-without-choices", _space("empty_spaces:Empty"),
         ("has no choices", "return at least one Choice"), files={"empty_spaces.py": NO_CHOICES}),
    Case("space-dry-forward-fails", _space("broken_spaces:Broken"),
         ("dry forward pass", "fix build()"), files={"broken_spaces.py": BROKEN_FORWARD}),
    Case("space-wrong-class-count", _space("three_spaces:Three"),
         ("outputs shape (2, 3), expected (2, 10)", "self.input_spec"),
         files={"three_spaces.py": GOOD_SPACE.format(name="Three", classes=3)}),
    Case("space-build-not-a-module", _space("weird_spaces:Weird"),
         ("must return a torch.nn.Module", "fix build()"), files={"weird_spaces.py": NOT_A_MODULE}),
    Case("registered-space-not-imported", _space("bad-inputs-registered"),
         ("unknown search space 'bad-inputs-registered'", "plugins: [module]"),
         files={"registered_spaces.py": REGISTERED}),
    Case("plugin-missing", _set("plugins", ["no_such_plugin"]),
         ("plugins", "cannot import plugin module 'no_such_plugin'", "PYTHONPATH")),
    Case("plugin-raises", _set("plugins", ["raising_plugin"]),
         ("plugin module 'raising_plugin' raised", "ZeroDivisionError", "fix the module"),
         files={"raising_plugin.py": "1 / 0\n"}),
    # --- searcher options (checked by the searcher's own constructor)
    Case("searcher-option-typo", _set("searcher.options", {"populaton_size": 8}),
         ("searcher.options", "no option(s) ['populaton_size']", "accepted:", "population_size")),
    Case("searcher-option-negative", _set("searcher.options", {"population_size": -3}),
         ("searcher.options", "population_size must be an integer >= 2, got -3")),
    Case("searcher-option-out-of-range", _set("searcher.options.crossover_probability", 1.5),
         ("searcher.options", "crossover_probability must be a number in [0, 1]")),
    Case("random-searcher-option", lambda c, t: c.update(searcher={"name": "random",
                                                                   "options": {"population_size": 4}}),
         ("searcher 'random' has no option(s) ['population_size']",)),
    # --- targets and this machine
    Case("core-does-not-exist", _set("targets.0.cores", [99]),
         ("targets.0 (cpu-ort)", "cores [99] are not available", "fix its cores")),
    Case("negative-core-does-not-exist", _set("targets.0.cores", [-99]),
         ("core -99 does not exist", "fix its cores")),
    Case("cuda-without-gpu", _target(device="cuda"),
         ("targets.0 (t)", "CUDAExecutionProvider", "change its backend/device/precision")),
    Case("device-the-backend-lacks", _target(backend="openvino", device="cuda"),
         ("openvino has no device 'cuda'", "supported:")),
    Case("precision-the-backend-lacks", _target(precision="bf16"),
         ("onnxruntime does not support precision 'bf16'", "supported: fp32")),
    Case("backend-not-installed-here", _target(backend="tensorrt", device="cuda"),
         ("targets.0 (t)", "tensorrt", "change its backend/device/precision")),
    Case("more-cpus-than-ray-has", _set("budget.trial_cpus", 8),
         ("needs 9 CPUs", "Ray has 2", "lower budget.trial_cpus")),
    Case("gpu-trials-without-a-gpu", _set("budget.trial_gpus", 1),
         ("budget.trial_gpus 1 (each trial) asks for a GPU, but this machine has none",
          "use cpu, or ray.address of a cluster with GPU nodes")),
    Case("supernet-on-a-gpu-without-one", _weight_sharing(device="cuda", finetune_epochs=1),
         ("supernet.device cuda (the supernet trial and fine-tuning) asks for a GPU",
          "the embedded Ray would wait for one forever")),
    Case("supernet-cpus-more-than-ray-has", _weight_sharing(cpus=3),
         ("supernet.cpus 3 (the supernet trial and each fine-tuning task)",
          "more than the 2 CPUs Ray has", "lower it or raise ray.num_cpus")),
    Case("trial-resource-only-a-cluster-has", _set("budget.trial_resources", {"paretonas/trainer": 1}),
         ("budget.trial_resources asks each trial for paretonas/trainer: 1",
          "which the embedded Ray does not have", "paretonas/onnxruntime/cpu",
          "set ray.address of a cluster whose nodes declare it")),
    Case("ray-client-not-installed", _no_ray_client,
         ("ray.address ray://head.invalid:10001 needs Ray Client", "pip install 'ray[client]")),
    # --- where results go
    Case("output-dir-under-a-file", _file_in_the_way, ("output_dir", "is a file, not a folder")),
    Case("output-dir-a-uri", _set("output_dir", "s3://bucket/results"),
         ("output_dir", "'s3://bucket/results' is a URI", "give a filesystem path")),
    Case("sqlite-folder-missing", _set("tracking.uri", "sqlite:///no/such/folder/mlflow.db"),
         ("folder no/such/folder does not exist", "create it or point tracking.uri elsewhere")),
    Case("sqlite-path-is-a-folder", _folder_as_db, ("is a folder; name a .db file",)),
    Case("tracking-server-unreachable",
         lambda c, t: c["tracking"].update(uri=f"http://127.0.0.1:{_free_port()}"),
         ("no MLflow server answered within 5 s", "start one (mlflow server")),
]


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_before_anything_trains(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the cwd goes on it; undo that
    for name, text in case.files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
        monkeypatch.delitem(sys.modules, Path(name).stem, raising=False)  # removed afterwards
    config = copy.deepcopy(TINY_CONFIG)
    config["tracking"] = {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "bad"}
    config["output_dir"] = str(tmp_path / "results")
    patch = case.change(config, tmp_path) if case.change else None
    if callable(patch):
        patch(monkeypatch)
    path = tmp_path / "config.yaml"
    path.write_text(case.raw_yaml if case.raw_yaml is not None else yaml.safe_dump(config))
    before = sorted(tmp_path.rglob("*"))
    overrides = [arg for item in case.overrides for arg in ("--set", item)]

    verdicts = []
    for command in ("validate", "run"):
        code = main([command, "config.yaml", *overrides])
        out, err = capsys.readouterr()
        assert code == 2, f"{command} exited {code}: {out}{err}"
        assert "Traceback" not in out + err
        lines = err.strip().splitlines()
        assert len(lines) == 1, f"{command} printed {len(lines)} lines:\n{err}"
        for words in case.expect:
            assert words in lines[0], f"{command}: {words!r} not in {lines[0]!r}"
        verdicts.append(lines[0])
    assert verdicts[0] == verdicts[1]  # validate says what run says
    after = [p for p in sorted(tmp_path.rglob("*")) if "__pycache__" not in p.parts]
    assert after == [p for p in before if "__pycache__" not in p.parts]  # nothing written


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("validate", "run"):
        assert main([command, str(tmp_path / "absent.yaml")]) == 2
        err = capsys.readouterr().err
        assert "cannot read config" in err and "check the path" in err and "Traceback" not in err


def test_warnings_do_not_refuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """A budget smaller than the population, or than the space: warned, still valid."""
    config = copy.deepcopy(TINY_CONFIG)
    config["budget"] = {"candidates": 3}
    config["space"] = {"name": "mlp", "options": {"max_layers": 1, "hidden_units": [8]}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "config.yaml"]) == 0
    out = capsys.readouterr().out
    assert "smaller than the nsga2 population (4)" in out
    assert "only 2 distinct architecture(s)" in out
    assert "valid (" in out
    checked = preflight(load_config(path))
    assert len(checked.warnings) == 2
