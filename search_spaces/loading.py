"""Find a space by registered name or ``module:attribute`` and instantiate it.

User modules (a ``module:Class`` space, a ``plugins:`` entry) are imported with the
current directory on ``sys.path``, so a space file beside the config just works.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
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


def import_user_module(module_name: str, *, what: str = "module") -> ModuleType:
    """Import ``module_name`` with the current directory importable; errors say how to fix.

    A module that is missing, or that raises while it is imported, becomes a
    ``SearchSpaceError`` naming the module, the cause and the fix (never a traceback).
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.split(".")[0] != error.name.split(".")[0]:
            raise SearchSpaceError(
                f"{what} {module_name!r} needs {error.name!r}, which is not installed: "
                f"pip install it (or fix the import in {module_name})"
            ) from error
        raise SearchSpaceError(
            f"cannot import {what} {module_name!r} ({error}); run paretonas from the folder "
            f"that holds {module_name.replace('.', '/')}.py, or add that folder to PYTHONPATH"
        ) from error
    except Exception as error:  # the user's module raised while being imported
        raise SearchSpaceError(
            f"{what} {module_name!r} raised while being imported: {type(error).__name__}: "
            f"{error}; fix the module (run `python -c 'import {module_name}'` to see the traceback)"
        ) from error


#: The plugin modules a search's Ray workers import when they start (comma-separated).
PLUGINS_ENV = "PARETONAS_PLUGINS"


def import_plugins(modules: Iterable[str]) -> None:
    """Import each plugin module (they register spaces, searchers, backends on import)."""
    for module_name in modules:
        import_user_module(module_name, what="plugin module")


def import_plugins_from_env() -> None:
    """Ray's worker setup hook: import the plugins the driver listed in ``PARETONAS_PLUGINS``."""
    import_plugins(filter(None, os.environ.get(PLUGINS_ENV, "").split(",")))


def resolve_space_factory(spec: str) -> SpaceFactory:
    """``spec`` is a registered name (``conv-classifier``) or ``package.module:attribute``."""
    if ":" not in spec:
        import search_spaces.builtin  # noqa: F401  (registers the built-in spaces)

        return SPACES.get(spec)
    module_name, _, attribute = spec.partition(":")
    module = import_user_module(module_name, what="search space module")
    try:
        factory = getattr(module, attribute)
    except AttributeError:
        public = sorted(name for name, value in vars(module).items()
                        if isinstance(value, type) and issubclass(value, SearchSpace)
                        and value is not SearchSpace)
        raise SearchSpaceError(
            f"module {module_name!r} has no attribute {attribute!r}; "
            f"search spaces it defines: {', '.join(public) or '(none)'}"
        ) from None
    if not callable(factory):
        raise SearchSpaceError(f"{spec} is not a SearchSpace class or factory")
    return factory


def create_space(
    spec: str, *, input_spec: InputSpec, options: Mapping[str, Any] | None = None
) -> SearchSpace:
    """Instantiate the space ``spec`` as ``factory(input_spec=..., **options)``."""
    factory = resolve_space_factory(spec)
    missing = sorted(getattr(factory, "__abstractmethods__", ()))
    if isinstance(factory, type) and missing:
        raise SearchSpaceError(
            f"search space {spec!r} does not implement {', '.join(missing)}; define it in the "
            "class (see the README's custom space example)"
        )
    try:
        space = factory(input_spec=input_spec, **dict(options or {}))
    except SearchSpaceError:
        raise
    except TypeError as error:
        raise SearchSpaceError(
            f"search space {spec!r} rejected its options: {error}; "
            f"fix space.options{_accepted_options(factory)}"
        ) from error
    except Exception as error:  # the user's constructor raised
        raise SearchSpaceError(
            f"search space {spec!r} failed to construct: {type(error).__name__}: {error}; "
            "fix space.options or the space's __init__"
        ) from error
    if not isinstance(space, SearchSpace):
        raise SearchSpaceError(f"{spec} returned {type(space).__name__}, not a SearchSpace")
    if ":" in spec and space.name == "custom":
        space.name = spec
    return space


def _accepted_options(factory: SpaceFactory) -> str:
    import inspect

    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return ""
    names = [p.name for p in parameters
             if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "input_spec"]
    return f" (accepted: {', '.join(names) or 'none'})"
