"""Finding spaces: registered names, ``module:attribute`` specs, and the registry rules."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from search_spaces import (
    SPACES,
    InputSpec,
    SearchSpace,
    SearchSpaceError,
    UnknownNameError,
    create_space,
    register_space,
)
from search_spaces.builtin import ConvClassifierSpace, MLPSpace
from search_spaces.registry import Registry

SPEC = InputSpec((1, 8, 8), 10)

PLUGIN = '''
from torch import nn
from search_spaces import Categorical, SearchSpace

class PluginSpace(SearchSpace):
    def __init__(self, *, input_spec, widths=(4, 8)):
        self.widths = tuple(widths)
        super().__init__(input_spec=input_spec)

    def choices(self):
        return [Categorical("width", self.widths)]

    def build(self, arch):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, arch["width"]),
                             nn.Linear(arch["width"], self.input_spec.num_classes))

def not_a_space(*, input_spec):
    return 42

NOT_CALLABLE = 3
'''


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module importable as ``paretonas_test_plugin`` for this test only."""
    (tmp_path / "paretonas_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "paretonas_test_plugin", raising=False)
    return "paretonas_test_plugin"


def test_create_space_by_registered_name() -> None:
    conv = create_space("conv-classifier", input_spec=SPEC, options={"num_stages": 2})
    assert isinstance(conv, ConvClassifierSpace) and conv.name == "conv-classifier"
    assert conv.num_stages == 2
    assert isinstance(create_space("mlp", input_spec=SPEC), MLPSpace)


def test_create_space_by_module_attribute(plugin_module: str) -> None:
    space = create_space(f"{plugin_module}:PluginSpace", input_spec=SPEC, options={"widths": [2, 6]})
    assert space.name == f"{plugin_module}:PluginSpace"
    assert space.size() == 2
    arch = space.architecture({"width": 6})
    assert arch.space == space.name
    space.validate(arch)


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ("Missing", "module 'paretonas_test_plugin' has no attribute 'Missing'"),
        ("NOT_CALLABLE", "is not a SearchSpace class or factory"),
        ("not_a_space", "returned int, not a SearchSpace"),
    ],
)
def test_bad_module_attribute_specs(plugin_module: str, attribute: str, message: str) -> None:
    with pytest.raises(SearchSpaceError, match=message):
        create_space(f"{plugin_module}:{attribute}", input_spec=SPEC)


def test_unimportable_module_and_rejected_options(plugin_module: str) -> None:
    with pytest.raises(SearchSpaceError, match="cannot import search space module 'no_such_module_x'"):
        create_space("no_such_module_x:Space", input_spec=SPEC)
    with pytest.raises(SearchSpaceError, match="search space 'mlp' rejected its options: .*depth"):
        create_space("mlp", input_spec=SPEC, options={"depth": 3})


def test_unknown_space_name_lists_known_ones() -> None:
    with pytest.raises(UnknownNameError,
                       match="unknown search space 'resnet'; known: .*conv-classifier.*mlp"):
        create_space("resnet", input_spec=SPEC)


def test_register_space_names_the_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SPACES, "_entries", dict(SPACES._entries))  # undone after the test

    @register_space("test-only")
    class TestOnlySpace(MLPSpace):
        pass

    assert TestOnlySpace.name == "test-only"
    assert isinstance(create_space("test-only", input_spec=SPEC), TestOnlySpace)
    with pytest.raises(SearchSpaceError, match="search space 'test-only' is already registered"):
        register_space("test-only")(MLPSpace)


def test_registry_rules() -> None:
    registry: Registry[int] = Registry("widget")
    assert registry.register("a", 1) == 1
    assert registry.register("a", 1) == 1  # the same object again is fine
    with pytest.raises(SearchSpaceError, match="widget 'a' is already registered"):
        registry.register("a", 2)
    with pytest.raises(SearchSpaceError, match="widget name must be a non-empty string"):
        registry.register(" b", 2)
    registry.decorator("c")(3)
    assert registry.names() == ["a", "c"] and "c" in registry and list(registry) == ["a", "c"]
    with pytest.raises(UnknownNameError) as caught:
        registry.get("z")
    assert str(caught.value) == "unknown widget 'z'; known: a, c"
    assert isinstance(caught.value, KeyError)


def test_search_space_is_abstract() -> None:
    with pytest.raises(TypeError):
        SearchSpace(input_spec=SPEC)  # type: ignore[abstract]
