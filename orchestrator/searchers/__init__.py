"""Searchers by name: ``SEARCHERS`` registry and the ``create_searcher`` factory."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.searchers.base import Searcher
from orchestrator.searchers.nsga2 import NSGA2Searcher
from orchestrator.searchers.random_search import RandomSearcher
from search_spaces import SearchSpace
from search_spaces.registry import Registry

SEARCHERS: Registry[type[Searcher]] = Registry("searcher", entry_point_group="paretonas.searchers")
SEARCHERS.register("nsga2", NSGA2Searcher)
SEARCHERS.register("random", RandomSearcher)


def create_searcher(
    name: str, *, space: SearchSpace, seed: int, options: Mapping[str, Any] | None = None
) -> Searcher:
    """Instantiate the registered searcher ``name`` with keyword ``options``.

    Unknown names raise ``UnknownNameError`` listing the known ones; an option the
    searcher's constructor does not take raises ``ConfigError`` listing those it does.
    """
    factory = SEARCHERS.get(name)
    options = dict(options or {})
    parameters = inspect.signature(factory).parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        accepted = sorted(
            p.name for p in parameters
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("space", "seed")
        )
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ConfigError(
                f"searcher {name!r} has no option(s) {unknown}; accepted: {', '.join(accepted) or '(none)'}"
            )
    searcher = factory(space=space, seed=seed, **options)
    if not isinstance(searcher, Searcher):
        raise ConfigError(f"searcher {name!r} built a {type(searcher).__name__}, not a Searcher")
    return searcher
