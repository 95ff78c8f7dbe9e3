"""Searchers backed by Optuna and nevergrad, driven through their own ask/tell APIs.

Both libraries are dependencies of paretonas but are imported lazily, so a missing one
fails only when used, with an install hint.
"""

from __future__ import annotations

import importlib
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from orchestrator.errors import ConfigError
from orchestrator.searchers.base import Searcher
from orchestrator.searchers.nsga2 import _is_int
from search_spaces import Architecture, SearchSpace


def _import(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"this searcher needs {package}: pip install {package}") from None


class OptunaSearcher(Searcher):
    """Optuna's NSGA-II (``sampler: nsga2``) or TPE (``sampler: tpe``) through ``study.ask``/``tell``.

    Constraint violations reach the sampler through ``trial.set_constraint``. Optuna may
    propose an architecture twice; each proposal is an evaluation.
    """

    min_objectives: ClassVar[int] = 1
    unique_proposals: ClassVar[bool] = False
    SAMPLERS = ("nsga2", "tpe")

    def __init__(self, *, space: SearchSpace, seed: int, num_objectives: int = 2,
                 sampler: Literal["nsga2", "tpe"] = "nsga2", population_size: int = 20) -> None:
        if sampler not in self.SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(self.SAMPLERS)}, got {sampler!r}")
        if not _is_int(population_size) or population_size < 2:
            raise ConfigError(f"population_size must be an integer >= 2, got {population_size!r}")
        if not _is_int(num_objectives) or num_objectives < 1:
            raise ConfigError(f"num_objectives must be an integer >= 1, got {num_objectives!r}")
        super().__init__(space=space, seed=seed)
        optuna = _import("optuna", "optuna")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.sampler_name = sampler
        samplers = optuna.samplers
        chosen = (samplers.NSGAIISampler(seed=seed, population_size=population_size)
                  if sampler == "nsga2" else samplers.TPESampler(seed=seed, multivariate=True))
        self._study = optuna.create_study(directions=["minimize"] * num_objectives, sampler=chosen)
        self._distributions = {
            choice.name: optuna.distributions.CategoricalDistribution(list(choice.options()))
            for choice in space.choices()
        }
        self._trials: dict[str, deque[Any]] = defaultdict(deque)

    def ask(self) -> Architecture:
        trial = self._study.ask(self._distributions)
        arch = self.space.architecture(trial.params)
        self._trials[arch.key].append(trial)
        return arch

    def tell(self, arch: Architecture, *, objectives: Sequence[float], violation: float = 0.0,
             fidelity: float | None = None) -> None:
        values = self._checked(arch, objectives, violation)
        if fidelity is not None or not self._trials.get(arch.key):
            return  # Optuna learns from final results of its own proposals only
        trial = self._trials[arch.key].popleft()
        trial.set_constraint("violation", float(violation))
        self._study.tell(trial, list(values))

    def tell_failure(self, arch: Architecture, reason: str) -> None:
        if self._trials.get(arch.key):
            from optuna.trial import TrialState

            self._study.tell(self._trials[arch.key].popleft(), state=TrialState.FAIL)


class NevergradSearcher(Searcher):
    """Any nevergrad optimizer (``optimizer``, a name from ``ng.optimizers.registry``).

    The space becomes an ``ng.p.Dict`` of ``ng.p.Choice``; losses are told as a vector
    (nevergrad's own multi-objective mode) with the constraint violation;
    ``pareto_front()`` reads the optimizer's own front back.
    """

    min_objectives: ClassVar[int] = 1
    unique_proposals: ClassVar[bool] = False

    def __init__(self, *, space: SearchSpace, seed: int,
                 optimizer: str = "DiscreteLenglerOnePlusOne", budget: int = 1000) -> None:
        ng = _import("nevergrad", "nevergrad")
        if optimizer not in ng.optimizers.registry:
            known = ", ".join(sorted(name for name in ng.optimizers.registry
                                     if "Discrete" in name or name in ("NGOpt", "RandomSearch")))
            raise ConfigError(f"unknown nevergrad optimizer {optimizer!r}; e.g. {known}")
        if not _is_int(budget) or budget < 1:
            raise ConfigError(f"budget must be an integer >= 1, got {budget!r}")
        super().__init__(space=space, seed=seed)
        parametrization = ng.p.Dict(**{
            choice.name: ng.p.Choice(list(choice.options())) for choice in space.choices()
        })
        parametrization.random_state = np.random.RandomState(seed)
        self.optimizer_name = optimizer
        self._optimizer = ng.optimizers.registry[optimizer](parametrization=parametrization,
                                                            budget=budget, num_workers=1)
        self._candidates: dict[str, deque[Any]] = defaultdict(deque)

    def ask(self) -> Architecture:
        candidate = self._optimizer.ask()
        arch = self.space.architecture(candidate.value)
        self._candidates[arch.key].append(candidate)
        return arch

    def tell(self, arch: Architecture, *, objectives: Sequence[float], violation: float = 0.0,
             fidelity: float | None = None) -> None:
        values = self._checked(arch, objectives, violation)
        if fidelity is not None or not self._candidates.get(arch.key):
            return
        candidate = self._candidates[arch.key].popleft()
        loss = values[0] if len(values) == 1 else np.array(values)
        if violation > 0:
            self._optimizer.tell(candidate, loss, constraint_violation=[float(violation)])
        else:
            self._optimizer.tell(candidate, loss)

    def tell_failure(self, arch: Architecture, reason: str) -> None:
        """Nevergrad has no failure state: the candidate is simply never told."""
        if self._candidates.get(arch.key):
            self._candidates[arch.key].popleft()

    def pareto_front(self) -> list[Architecture]:
        """The optimizer's own Pareto front (multi-objective losses)."""
        return [self.space.architecture(p.value) for p in self._optimizer.pareto_front()]


class PymooNSGA2Searcher(Searcher):
    """pymoo's generational NSGA-II on the integer encoding (SBX + polynomial mutation,
    rounded), through its ``ask``/``tell`` interface: an outside baseline.

    A generation is told to pymoo once all its members have results; asks beyond the
    current generation while results are pending are random samples (each an evaluation).
    """

    min_objectives: ClassVar[int] = 1
    unique_proposals: ClassVar[bool] = False

    def __init__(self, *, space: SearchSpace, seed: int, num_objectives: int = 2,
                 population_size: int = 20) -> None:
        if not _is_int(population_size) or population_size < 2:
            raise ConfigError(f"population_size must be an integer >= 2, got {population_size!r}")
        if not _is_int(num_objectives) or num_objectives < 1:
            raise ConfigError(f"num_objectives must be an integer >= 1, got {num_objectives!r}")
        super().__init__(space=space, seed=seed)
        _import("pymoo", "pymoo")
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.operators.sampling.rnd import IntegerRandomSampling

        upper = np.array(space.cardinalities()) - 1
        problem = Problem(n_var=len(upper), n_obj=num_objectives, xl=np.zeros(len(upper)),
                          xu=upper, vtype=int)
        self._algorithm = NSGA2(
            pop_size=population_size, sampling=IntegerRandomSampling(),
            crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
            mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
            eliminate_duplicates=True,
        )
        self._algorithm.setup(problem, seed=seed, verbose=False)
        self._generation: Any = None
        self._queue: deque[int] = deque()
        self._results: dict[int, tuple[float, ...]] = {}
        self._index_of: dict[str, deque[int]] = defaultdict(deque)

    def ask(self) -> Architecture:
        if not self._queue and (self._generation is None
                                or len(self._results) == len(self._generation)):
            self._next_generation()
        if not self._queue:
            return self.space.sample(self.rng)
        index = self._queue.popleft()
        arch = self.space.decode(self._generation[index].X.astype(int))
        self._index_of[arch.key].append(index)
        return arch

    def tell(self, arch: Architecture, *, objectives: Sequence[float], violation: float = 0.0,
             fidelity: float | None = None) -> None:
        values = self._checked(arch, objectives, violation)
        if fidelity is None and self._index_of.get(arch.key):
            self._results[self._index_of[arch.key].popleft()] = values

    def tell_failure(self, arch: Architecture, reason: str) -> None:
        if self._index_of.get(arch.key):
            self._results[self._index_of[arch.key].popleft()] = tuple(
                [1e12] * (self._num_objectives or self._algorithm.problem.n_obj))

    def _next_generation(self) -> None:
        if self._generation is not None:
            ordered = [self._results[i] for i in range(len(self._generation))]
            self._generation.set("F", np.array(ordered, dtype=float))
            self._algorithm.tell(infills=self._generation)
        self._generation = self._algorithm.ask()
        self._results = {}
        self._queue = deque(range(len(self._generation)))
