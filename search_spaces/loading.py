"""Find a space by registered name or ``module:attribute`` and instantiate it."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from search_spaces.base import InputSpec, SearchSpace
from search_spaces.errors import SearchSpaceError
from search_spaces.registry import Registry

SpaceFactory = Callable[..., SearchSpace]

SPACES: Registry[SpaceFactory] = Registry("search space", entry_point_group="paretonas.spaces")


def register_space(name: str) -> Callable[[SpaceFactory], SpaceFactory]:
    """Class decorator: make a ``SearchSpace`` subclass available under ``name`` in YAML."""

    def decorate(factory: SpaceFactory) -> SpaceFactory:
        if isinstance(factory, type):
            setattr(factory, "name", name)  # noqa: B010 (a SearchSpace class attribute)
        return SPACES.register(name, factory)

    return decorate


def resolve_space_factory(spec: str) -> SpaceFactory:
    """``spec`` is a registered name (``conv-classifier``) or ``package.module:attribute``."""
    if ":" not in spec:
        import search_spaces.builtin  # noqa: F401  (registers the built-in spaces)

        return SPACES.get(spec)
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise SearchSpaceError(f"cannot import search space module {module_name!r}: {error}") from error
    try:
        factory = getattr(module, attribute)
    except AttributeError:
        raise SearchSpaceError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not callable(factory):
        raise SearchSpaceError(f"{spec} is not a SearchSpace class or factory")
    return factory


def create_space(
    spec: str, *, input_spec: InputSpec, options: Mapping[str, Any] | None = None
) -> SearchSpace:
    """Instantiate the space ``spec`` for ``input_spec`` with keyword ``options``."""
    factory = resolve_space_factory(spec)
    try:
        space = factory(input_spec=input_spec, **dict(options or {}))
    except SearchSpaceError:
        raise
    except TypeError as error:
        raise SearchSpaceError(f"search space {spec!r} rejected its options: {error}") from error
    if not isinstance(space, SearchSpace):
        raise SearchSpaceError(f"{spec} returned {type(space).__name__}, not a SearchSpace")
    if ":" in spec and space.name == "custom":
        space.name = spec
    return space
