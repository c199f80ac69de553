"""The learned predictor: the best strategy for signatures that were never measured.

A gradient-boosted tree ensemble (scikit-learn's ``HistGradientBoostingRegressor``) predicts the
log2 of the seconds each (strategy, parameters) candidate takes on a signature, from the
features of :mod:`autoconv.prediction.features` (log sizes, kernel/length ratio, exact operation
counts of the direct and FFT work, groups, stride, dilation, dtype, device). It learns the
residual over the candidate's operation count, log2(seconds / work): the seconds per unit of
work vary far less than the seconds themselves and level off for large problems, so the trees
(which cannot extrapolate) stay sensible beyond the sizes they were fitted on. The predicted
best is the arg-min over the candidates the tuner enumerated, so the model can only ever pick a
strategy that supports the signature.

Gradient boosting was chosen by grouped cross-validation against random forests, extra trees
and nearest neighbours (``scripts/bench_predictor.py``; figures in
``benchmarks/predictor-cpu.md``): it ranks candidates best, fits a grid's measurements in
seconds on one core, and, copied into plain arrays (:mod:`autoconv.prediction.tree_ensemble`),
predicts one signature's candidates (features included) well under a millisecond, several
times faster than scikit-learn's own ``predict``.

**Confidence.** :meth:`LearnedPredictor.decide` also says whether the prediction is safe to use
without measuring: the predicted best must beat the best candidate of any other *kind* by
``margin``, where candidates differing only in a size parameter (``Strategy.size_params``: block
sizes of one strategy are usually close to each other, and picking the neighbouring one costs
little) are of one kind, but ``direct`` as called and ``direct`` padding first are not (they can
differ tenfold), and the signature must lie within ``max_distance`` octaves
(Euclidean, over log2 sizes; dtype, gradients and device must match) of a measured signature.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from autoconv.choice import Choice
from autoconv.prediction.features import (
    FEATURES_VERSION,
    WORK_COLUMN,
    FeatureSpace,
    neighbourhood_vector,
)
from autoconv.prediction.tree_ensemble import TreeEnsemble
from autoconv.signature import Signature
from autoconv.strategies import get
from autoconv.tuning.candidates import Candidate

#: Hyper-parameters of the gradient boosting (chosen by grouped cross-validation).
BOOSTING = {"max_iter": 300, "learning_rate": 0.1, "max_leaf_nodes": 31, "max_depth": 8,
            "min_samples_leaf": 4, "l2_regularization": 0.0, "early_stopping": False}
#: Defaults of the confidence rule (see the module docstring), chosen from the held-out
#: table of ``scripts/bench_predictor.py``: the rule whose trusted picks come closest to being
#: within 3 % of the best 90 % of the time; looser rules trust more signatures at a higher
#: regret (the table is in ``benchmarks/predictor-cpu.md``).
DEFAULT_MARGIN = 2.0
DEFAULT_MAX_DISTANCE = 2.5


def candidate_kind(strategy: str, params: Mapping[str, Any]) -> tuple:
    """What a candidate is, up to its size parameters (:meth:`Strategy.kind
    <autoconv.strategies.Strategy.kind>`)."""
    return get(strategy).kind(params)


@dataclass(frozen=True)
class Sample:
    """One measured candidate: what the model learns from.

    Attributes:
        weight: importance in the fit (lower for measurements of a similar device).
    """

    signature: Signature
    strategy: str
    params: Mapping[str, Any]
    seconds: float
    weight: float = 1.0


@dataclass(frozen=True)
class Decision:
    """A prediction, with what the confidence rule looked at.

    Attributes:
        choice: the predicted best candidate (``source="predicted"``).
        confident: whether the tuner may use it without measuring.
        margin: predicted seconds of the best candidate of another kind / of the pick
            (``inf`` when all candidates are of one kind; see :func:`candidate_kind`).
        distance: octaves to the nearest signature measured on this device.
    """

    choice: Choice
    confident: bool
    margin: float
    distance: float


@dataclass(frozen=True)
class Ranking:
    """The model's view of one signature's candidates (indices into the candidate list)."""

    seconds: np.ndarray
    best: int
    margin: float
    distance: float
    confident: bool


def fit_ensemble(X: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None,
                 seed: int = 0) -> TreeEnsemble:
    """Fit the boosting model on one core and copy it into a :class:`TreeEnsemble`.

    One thread on purpose: OpenMP threads on a busy machine make the fit many times slower.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    model = HistGradientBoostingRegressor(random_state=seed, **BOOSTING)
    with threadpool_limits(1):
        model.fit(X, y, sample_weight=weights)
    return TreeEnsemble.from_sklearn(model)


def design_matrix(space: FeatureSpace, samples: Sequence[Sample]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, log2 seconds, weights) of ``samples``, built one signature at a time."""
    by_signature: dict[Signature, list[Sample]] = {}
    for sample in samples:
        by_signature.setdefault(sample.signature, []).append(sample)
    blocks, targets, weights = [], [], []
    for signature, group in by_signature.items():
        blocks.append(space.rows(signature, [(s.strategy, s.params) for s in group]))
        targets.extend(math.log2(s.seconds) for s in group)
        weights.extend(s.weight for s in group)
    if not blocks:
        return np.empty((0, len(space.columns))), np.empty(0), np.empty(0)
    return np.vstack(blocks), np.array(targets), np.array(weights)


@dataclass
class LearnedPredictor:
    """A fitted model of candidate times on one device, and the signatures it was fitted on.

    Build one with :meth:`fit`. Implements the selector's ``Predictor`` protocol
    (:meth:`decide`: the pick and whether it is confident).
    """

    ensemble: TreeEnsemble
    space: FeatureSpace
    measured: np.ndarray  # neighbourhood vectors of the measured signatures, one per row
    margin: float = DEFAULT_MARGIN
    max_distance: float = DEFAULT_MAX_DISTANCE
    version: int = FEATURES_VERSION
    samples: int = field(default=0)

    @classmethod
    def fit(cls, samples: Iterable[Sample], *, strategies: Sequence[str] | None = None,
            seed: int = 0, margin: float = DEFAULT_MARGIN,
            max_distance: float = DEFAULT_MAX_DISTANCE) -> LearnedPredictor:
        """Fit on measured candidates (only those that ran correctly belong here).

        Args:
            samples: the measurements.
            strategies: the strategy names the model describes (default: those in the data,
                sorted); candidates of other strategies are never predicted.

        Raises:
            ValueError: no samples, or a sample with a non-positive time.
        """
        samples = list(samples)
        if not samples:
            raise ValueError("cannot fit a predictor without measurements")
        if any(not s.seconds > 0 for s in samples):
            raise ValueError("every measurement needs a positive time")
        names = tuple(strategies) if strategies else tuple(sorted({s.strategy for s in samples}))
        samples = [s for s in samples if s.strategy in names]
        space = FeatureSpace(names)
        X, y, w = design_matrix(space, samples)
        y = y - X[:, space.columns.index(WORK_COLUMN)]
        # Confidence is judged by the distance to signatures measured on this very device:
        # measurements of a device of the same kind (lower weight) inform the fit, but a
        # prediction near them alone never lets the tuner skip measuring.
        local = [neighbourhood_vector(s.signature) for s in samples if s.weight >= 1.0]
        measured = (np.unique(np.array(local), axis=0) if local
                    else np.empty((0, len(neighbourhood_vector(samples[0].signature)))))
        return cls(fit_ensemble(X, y, w, seed), space, measured, margin, max_distance,
                   FEATURES_VERSION, len(samples))

    def predict_seconds(self, signature: Signature,
                        candidates: Sequence[tuple[str, Mapping[str, Any]]]) -> np.ndarray:
        """Predicted seconds per candidate; ``nan`` for strategies the model does not know."""
        known = [i for i, (name, _) in enumerate(candidates) if self.space.knows(name)]
        seconds = np.full(len(candidates), np.nan)
        if known:
            rows = self.space.rows(signature, [candidates[i] for i in known])
            work = rows[:, self.space.columns.index(WORK_COLUMN)]
            seconds[known] = np.exp2(self.ensemble.predict(rows) + work)
        return seconds

    def distance(self, signature: Signature) -> float:
        """Octaves from ``signature`` to the nearest signature the model was fitted on with
        full weight (measured on this device, not on one of the same kind)."""
        if len(self.measured) == 0:
            return math.inf
        offsets = self.measured - neighbourhood_vector(signature)
        return float(np.sqrt(np.min(np.einsum("ij,ij->i", offsets, offsets))))

    def rank(self, signature: Signature,
             candidates: Sequence[tuple[str, Mapping[str, Any]]]) -> Ranking | None:
        """Predicted seconds of every candidate, the pick and its confidence (None when no
        candidate's strategy is known to the model)."""
        seconds = self.predict_seconds(signature, candidates)
        if np.all(np.isnan(seconds)):
            return None
        best = int(np.nanargmin(seconds))
        kind = candidate_kind(*candidates[best])
        others = [t for t, candidate in zip(seconds, candidates)
                  if candidate_kind(*candidate) != kind and not math.isnan(t)]
        margin = float(min(others) / seconds[best]) if others else math.inf
        distance = self.distance(signature)
        confident = margin >= self.margin and distance <= self.max_distance
        return Ranking(seconds, best, margin, distance, confident)

    def decide(self, signature: Signature, candidates: Sequence[Candidate],
               device: torch.device) -> Decision | None:
        """The predicted best candidate and whether it is confident; None if none is known."""
        ranking = self.rank(signature, [(c.name, dict(c.params)) for c in candidates])
        if ranking is None:
            return None
        pick = candidates[ranking.best]
        choice = Choice.make(pick.strategy, dict(pick.params), source="predicted",
                             median_s=float(ranking.seconds[ranking.best]))
        return Decision(choice, ranking.confident, ranking.margin, ranking.distance)
