"""Searchers by name: ``SEARCHERS`` registry and the ``create_searcher`` factory."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.searchers.base import Searcher
from orchestrator.searchers.evolution import RegularizedEvolutionSearcher
from orchestrator.searchers.external import NevergradSearcher, OptunaSearcher, PymooNSGA2Searcher
from orchestrator.searchers.nsga2 import NSGA2Searcher
from orchestrator.searchers.predictive import PredictorGuidedSearcher
from orchestrator.searchers.random_search import RandomSearcher
from search_spaces import SearchSpace
from search_spaces.registry import Registry

SEARCHERS: Registry[type[Searcher]] = Registry("searcher", entry_point_group="paretonas.searchers")
SEARCHERS.register("nsga2", NSGA2Searcher)
SEARCHERS.register("random", RandomSearcher)
SEARCHERS.register("regularized", RegularizedEvolutionSearcher)
SEARCHERS.register("optuna", OptunaSearcher)
SEARCHERS.register("nevergrad", NevergradSearcher)
SEARCHERS.register("predictor", PredictorGuidedSearcher)
SEARCHERS.register("pymoo-nsga2", PymooNSGA2Searcher)

#: Constructor arguments the factory supplies itself (not user options).
FACTORY_ARGUMENTS = ("space", "seed", "num_objectives")


def check_searcher_options(name: str, options: Mapping[str, Any],
                           num_objectives: int | None = None) -> None:
    """Refuse unknown option names and too few objectives, naming what is allowed.

    Cheap (no searcher is built), so the config layer runs it at validation; values are
    checked by the searcher's constructor.
    """
    factory = SEARCHERS.get(name)
    parameters = inspect.signature(factory).parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        accepted = sorted(
            p.name for p in parameters
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.name not in FACTORY_ARGUMENTS
        )
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ConfigError(
                f"searcher {name!r} has no option(s) {unknown}; accepted: {', '.join(accepted) or '(none)'}"
            )
    needed = int(getattr(factory, "min_objectives", 1))
    if num_objectives is not None and num_objectives < needed:
        raise ConfigError(f"searcher {name!r} needs at least {needed} objectives, got "
                          f"{num_objectives}; add one or choose another searcher")


def create_searcher(
    name: str, *, space: SearchSpace, seed: int, options: Mapping[str, Any] | None = None,
    num_objectives: int | None = None,
) -> Searcher:
    """Instantiate the registered searcher ``name`` with keyword ``options``.

    Unknown names raise ``UnknownNameError`` listing the known ones; an option the
    searcher's constructor does not take raises ``ConfigError`` listing those it does.
    ``num_objectives`` is passed to searchers that take it (e.g. Optuna's study).
    """
    factory = SEARCHERS.get(name)
    options = dict(options or {})
    check_searcher_options(name, options, num_objectives)
    if num_objectives is not None and "num_objectives" in inspect.signature(factory).parameters:
        options["num_objectives"] = num_objectives
    searcher = factory(space=space, seed=seed, **options)
    if not isinstance(searcher, Searcher):
        raise ConfigError(f"searcher {name!r} built a {type(searcher).__name__}, not a Searcher")
    return searcher
