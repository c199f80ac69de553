"""Active learning for the training grid: measure next where the model is least sure.

After a seed sample of the grid is measured, :func:`adaptive_rounds` repeatedly fits the
predictor on everything measured so far and picks, from a larger pool of grid signatures
not yet measured, those whose predicted ranking is least certain: the smallest *margin*
between the predicted best candidate and the best candidate of another kind (the same margin
the confidence rule uses, :mod:`autoconv.prediction.predictor`). A signature whose two best
kinds are predicted within a few percent of each other is where a measurement most likely
changes the pick; one predicted to win by 10x teaches little.

Margins cluster: the signatures nearest a decision boundary are often near each other too.
Each round therefore takes its picks greedily by margin, skipping any pool signature within
:data:`DIVERSITY_OCTAVES` (in the predictor's neighbourhood coordinates) of a pick already made
that round, so one round spreads over the whole boundary.

The loop knows nothing of timing or databases: ``measure`` and ``samples`` are given, so
``autoconv warm --grid --adaptive`` measures for real (:mod:`autoconv.offline.warm`) and the
benchmark replays it on a measured pool.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from autoconv.prediction.features import neighbourhood_vector
from autoconv.prediction.predictor import LearnedPredictor, Sample
from autoconv.signature import Signature
from autoconv.strategies import all_strategies
from autoconv.tuning.candidates import enumerate_candidates

#: Two picks of one round are at least this far apart (octaves, neighbourhood coordinates).
DIVERSITY_OCTAVES = 1.0
#: Signatures measured before the first fit, and per round after it, as shares of the total.
SEED_SHARE = 0.25
ROUNDS = 6
#: Fewest signatures a model is fitted on (below it, the pool's order is kept).
MIN_FIT_SIGNATURES = 30


def margin_of(model: LearnedPredictor, signature: Signature) -> float:
    """How sure ``model`` is of its pick for ``signature``: predicted seconds of the best
    candidate of another kind over the pick's (``inf`` when all candidates are of one kind
    or none is known to the model)."""
    candidates = [(c.name, dict(c.params))
                  for c in enumerate_candidates(all_strategies(), signature)]
    ranking = model.rank(signature, candidates)
    return math.inf if ranking is None else ranking.margin


def least_certain(model: LearnedPredictor, pool: Sequence[Signature], count: int,
                  diversity: float = DIVERSITY_OCTAVES) -> list[Signature]:
    """``count`` signatures of ``pool`` with the smallest margins, no two of them within
    ``diversity`` octaves of each other (relaxed to fill ``count`` when the pool is tight);
    ties keep the pool's order."""
    margins = np.array([margin_of(model, s) for s in pool])
    order = np.argsort(margins, kind="stable")
    points = np.array([neighbourhood_vector(s) for s in pool])
    picked: list[int] = []
    for index in order:
        if len(picked) == count:
            break
        if picked:
            offsets = points[picked] - points[index]
            if np.sqrt(np.min(np.einsum("ij,ij->i", offsets, offsets))) < diversity:
                continue
        picked.append(int(index))
    for index in order:  # too few far-apart signatures: fill with the next by margin
        if len(picked) == count:
            break
        if int(index) not in picked:
            picked.append(int(index))
    return [pool[i] for i in picked]


@dataclass(frozen=True)
class Round:
    """One round of the loop: what was measured and what the model was fitted on."""

    measured: list[Signature]
    fitted_on: int


def adaptive_rounds(pool: Sequence[Signature], total: int,
                    measure: Callable[[list[Signature]], object],
                    samples: Callable[[], list[Sample]], *, seed_share: float = SEED_SHARE,
                    rounds: int = ROUNDS,
                    fit: Callable[[list[Sample]], LearnedPredictor] = LearnedPredictor.fit,
                    should_stop: Callable[[], bool] = lambda: False) -> list[Round]:
    """Have ``total`` signatures of ``pool`` measured: a seed of ``seed_share`` of them in pool
    order, the rest in ``rounds`` rounds of the least certain (:func:`least_certain`) under a
    model refitted on ``samples()`` before each round.

    Pool signatures that ``samples()`` already holds (an earlier, interrupted run) count as
    measured and are never measured again, so a second run resumes where the first stopped.

    Args:
        pool: candidate signatures, in the order a random sample takes them (the grid's).
        total: how many pool signatures should be measured in the end (at most the pool).
        measure: measures a list of signatures (stores them, so ``samples`` sees them).
        samples: every measurement so far, as training samples.
        should_stop: checked before each round (a time budget); True ends the loop.

    Returns:
        The rounds that measured something, in order (the seed's first, ``fitted_on=0``).
    """
    total = min(total, len(pool))
    in_pool = set(pool)
    taken = {s.signature for s in samples()} & in_pool
    done: list[Round] = []
    seed_count = max(1, round(total * seed_share))
    if len(taken) < seed_count and not should_stop():
        seed = [s for s in pool if s not in taken][:seed_count - len(taken)]
        measure(seed)
        taken.update(seed)
        done.append(Round(seed, 0))
    per_round = max(1, math.ceil((total - seed_count) / max(rounds, 1)))
    while len(taken) < total and not should_stop():
        data = samples()
        taken |= {s.signature for s in data} & in_pool
        remaining = [s for s in pool if s not in taken]
        count = min(per_round, total - len(taken))
        if not remaining or count <= 0:
            break
        fitted = len({s.signature for s in data})
        if fitted >= MIN_FIT_SIGNATURES:
            batch = least_certain(fit(data), remaining, count)
        else:
            batch = remaining[:count]
        measure(batch)
        taken.update(batch)
        done.append(Round(batch, fitted))
    return done
