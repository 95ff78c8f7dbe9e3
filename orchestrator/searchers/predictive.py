"""Predictor-guided search: surrogates pre-screen NSGA-II's offspring before real evaluation.

One gradient-boosted-trees regressor per objective (accuracy, latency on each target,
size...) learns from the one-hot architecture encoding of the results told so far. Each
``ask`` breeds ``candidates`` children (NSGA-II tournament, crossover, mutation) plus a
few random ones, predicts their objectives and proposes the child whose predicted point
adds the most hypervolume to the front found so far (normalised by that front's span);
only that child reaches the hardware. Models are retrained online, every time the
number of results has grown by ``retrain_growth`` (default 10%), so retraining costs
O(log n) fits over a search. ``prediction_quality()`` reports, per objective, the share
of predictions within 10% of the measurement they preceded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from orchestrator.errors import ConfigError
from orchestrator.pareto import hypervolume, pareto_front_indices
from orchestrator.searchers.nsga2 import NSGA2Searcher, _is_int, _is_real
from orchestrator.searchers.random_search import sample_unseen
from search_spaces import Architecture, SearchSpace

#: Results needed before the surrogates are trusted (random/NSGA-II proposals until then).
MIN_TRAINING = 12


class PredictorGuidedSearcher(NSGA2Searcher):
    """NSGA-II whose children are pre-screened by per-objective surrogate models."""

    min_objectives: ClassVar[int] = 2

    def __init__(self, *, space: SearchSpace, seed: int, population_size: int = 4,
                 candidates: int = 64, random_candidates: int = 16,
                 retrain_growth: float = 0.1, mutation_rate: float | None = None) -> None:
        super().__init__(space=space, seed=seed, population_size=population_size,
                         crossover_probability=0.0, mutation_rate=mutation_rate,
                         archive_size=16)
        if not _is_int(candidates) or candidates < 1:
            raise ConfigError(f"candidates must be an integer >= 1, got {candidates!r}")
        if not _is_int(random_candidates) or random_candidates < 0:
            raise ConfigError(f"random_candidates must be an integer >= 0, got {random_candidates!r}")
        if not _is_real(retrain_growth) or not 0 < retrain_growth <= 10:
            raise ConfigError(f"retrain_growth must be a number in (0, 10], got {retrain_growth!r}")
        self.candidates = int(candidates)
        self.random_candidates = int(random_candidates)
        self.retrain_growth = float(retrain_growth)
        self._features: list[np.ndarray] = []
        self._targets: list[tuple[float, ...]] = []
        self._models: list[Any] = []
        self._trained_on = 0
        self._predicted: dict[str, np.ndarray] = {}
        self._hits: list[list[bool]] = []
        self._front: np.ndarray | None = None

    def ask(self) -> Architecture:
        if len(self._targets) < MIN_TRAINING or not len(self._population):
            return super().ask()
        self._maybe_retrain()
        pool = self._candidate_pool()
        if not pool:
            return super().ask()
        predictions = self._predict(pool)
        best = int(np.argmax(self._improvements(predictions)))
        arch = pool[best]
        self._predicted[arch.key] = predictions[best]
        self._remember(arch)
        self._pending.add(arch.key)
        return arch

    def tell(self, arch: Architecture, *, objectives: Sequence[float], violation: float = 0.0,
             fidelity: float | None = None) -> None:
        super().tell(arch, objectives=objectives, violation=violation, fidelity=fidelity)
        if fidelity is not None:
            return
        values = np.array(objectives, dtype=float)
        predicted = self._predicted.pop(arch.key, None)
        if predicted is not None:
            self._hits.append(list(np.abs(predicted - values) <= 0.1 * np.abs(values)))
        self._features.append(self.space.one_hot(arch))
        self._targets.append(tuple(values))
        if violation == 0:
            front = values[None, :] if self._front is None else np.vstack((self._front, values))
            self._front = front[pareto_front_indices(front)]

    def prediction_quality(self) -> list[float]:
        """Per objective: share of pre-screening predictions within 10% of the measurement."""
        if not self._hits:
            return []
        return [float(share) for share in np.mean(np.array(self._hits), axis=0)]

    @property
    def predictions_checked(self) -> int:
        return len(self._hits)

    # -- internals ------------------------------------------------------------------------
    def _maybe_retrain(self) -> None:
        if self._models and len(self._targets) < self._trained_on * (1 + self.retrain_growth):
            return
        from sklearn.ensemble import GradientBoostingRegressor

        features, targets = np.array(self._features), np.array(self._targets)
        self._models = []
        for column in range(targets.shape[1]):
            model = GradientBoostingRegressor(n_estimators=50, max_depth=3, learning_rate=0.1,
                                              subsample=0.9,
                                              random_state=int(self.rng.integers(2**31)))
            model.fit(features, targets[:, column])
            self._models.append(model)
        self._trained_on = len(self._targets)

    def _candidate_pool(self) -> list[Architecture]:
        members = self._population.members
        pool: dict[str, Architecture] = {}
        for _ in range(self.candidates):
            child = self._child(members)
            if child.key not in self._proposed:
                pool[child.key] = child
        for _ in range(self.random_candidates):
            arch = sample_unseen(self.space, self.rng, self._proposed)
            if arch is not None:
                pool[arch.key] = arch
        return list(pool.values())

    def _predict(self, pool: list[Architecture]) -> np.ndarray:
        features = np.array([self.space.one_hot(arch) for arch in pool])
        return np.column_stack([model.predict(features) for model in self._models])

    def _improvements(self, predictions: np.ndarray) -> np.ndarray:
        """Hypervolume each predicted point adds to the current front (normalised)."""
        front = self._front if self._front is not None else predictions[:1]
        ideal, nadir = front.min(axis=0), front.max(axis=0)
        span = np.where(nadir > ideal, nadir - ideal, 1.0)
        reference = np.full(front.shape[1], 1.1)
        scaled_front = (front - ideal) / span
        scaled = np.minimum((predictions - ideal) / span, reference - 1e-9)
        if front.shape[1] == 2:
            gains = _gains_2d(scaled_front, scaled, reference)
        else:
            base = hypervolume(scaled_front, reference)
            gains = np.array([hypervolume(np.vstack((scaled_front, point)), reference) - base
                              for point in scaled])
        # a tie (nothing predicted to improve): prefer the nearest to the front
        distance = np.min(np.linalg.norm(scaled[:, None, :] - scaled_front[None], axis=2), axis=1)
        return gains - 1e-6 * distance


def _gains_2d(front: np.ndarray, points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Exact 2-D hypervolume contribution of each of ``points`` to ``front``, vectorised.

    A point's gain is its box up to ``reference`` minus the part of that box the front
    already covers, which is the hypervolume of the front clipped to the box.
    """
    clipped = np.maximum(front[None, :, :], points[:, None, :])  # (c, f, 2)
    order = np.argsort(clipped[:, :, 0], axis=1, kind="stable")
    xs = np.take_along_axis(clipped[:, :, 0], order, axis=1)
    ys = np.minimum.accumulate(np.take_along_axis(clipped[:, :, 1], order, axis=1), axis=1)
    widths = np.diff(np.concatenate((xs, np.full((len(xs), 1), reference[0])), axis=1), axis=1)
    covered = np.sum(widths * (reference[1] - ys), axis=1)
    box = np.prod(reference[None, :] - points, axis=1)
    return np.maximum(box - covered, 0.0)
