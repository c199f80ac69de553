"""Active learning for the grid: the least-certain picks and the measuring loop, on a
synthetic machine (no timing)."""

from __future__ import annotations

import numpy as np

from autoconv.prediction.adaptive import adaptive_rounds, least_certain, margin_of
from autoconv.prediction.evaluation import group_by_signature, judge
from autoconv.prediction.features import neighbourhood_vector
from autoconv.prediction.predictor import LearnedPredictor
from autoconv.strategies import all_strategies
from autoconv.tuning.candidates import enumerate_candidates
from tests.prediction.fakes import random_signatures, synthetic_samples


def test_least_certain_takes_the_smallest_margins_spread_apart() -> None:
    train = random_signatures(80, seed=1)
    model = LearnedPredictor.fit(synthetic_samples(train))
    pool = random_signatures(200, seed=2)
    picked = least_certain(model, pool, 10)
    assert len(picked) == len(set(picked)) == 10 and set(picked) <= set(pool)
    margins = sorted(margin_of(model, s) for s in pool)
    # the picks are among the least sure fifth of the pool
    assert max(margin_of(model, s) for s in picked) <= margins[len(pool) // 5]
    points = np.array([neighbourhood_vector(s) for s in picked])
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    assert distances[~np.eye(10, dtype=bool)].min() >= 1.0  # no two within an octave


def test_least_certain_fills_its_count_when_the_pool_is_tight() -> None:
    model = LearnedPredictor.fit(synthetic_samples(random_signatures(60, seed=3)))
    pool = random_signatures(1, seed=4) * 1 + random_signatures(4, seed=4)
    assert len(least_certain(model, pool, 5, diversity=100.0)) == 5


class SyntheticDatabase:
    """What ``measure`` stored, as ``samples()`` reads it back."""

    def __init__(self) -> None:
        self.measured: list = []
        self.calls: list[int] = []

    def measure(self, batch: list) -> None:
        self.calls.append(len(batch))
        self.measured.extend(batch)

    def samples(self):
        return synthetic_samples(self.measured, noise=0.0)


def test_the_loop_seeds_in_pool_order_then_measures_in_rounds() -> None:
    pool = random_signatures(300, seed=5)
    db = SyntheticDatabase()
    rounds = adaptive_rounds(pool, 120, db.measure, db.samples, seed_share=0.25, rounds=3)
    assert db.measured[:30] == pool[:30]  # the seed: the pool's (random) order
    assert db.calls == [30, 30, 30, 30] and len(set(db.measured)) == 120
    assert [r.fitted_on for r in rounds] == [0, 30, 60, 90]


def test_the_loop_resumes_without_measuring_anything_twice() -> None:
    pool = random_signatures(200, seed=6)
    db = SyntheticDatabase()
    adaptive_rounds(pool, 60, db.measure, db.samples, should_stop=lambda: len(db.calls) >= 2)
    first = list(db.measured)
    assert 0 < len(first) < 60
    adaptive_rounds(pool, 60, db.measure, db.samples)
    assert len(db.measured) == len(set(db.measured)) == 60 and db.measured[:len(first)] == first
    assert adaptive_rounds(pool, 60, db.measure, db.samples) == []  # nothing left to do


def _mean_regret(train: list, test: list) -> float:
    model = LearnedPredictor.fit(synthetic_samples(train, seed=7))
    groups = group_by_signature(synthetic_samples(test, noise=0.0))
    regrets = []
    for signature, group in groups.items():
        ranking = model.rank(signature, [(s.strategy, dict(s.params)) for s in group])
        regrets.append(judge(group, ranking.best)[0])
    return float(np.exp(np.mean(np.log(regrets))))


def test_adaptive_selection_is_no_worse_than_random_on_a_synthetic_machine() -> None:
    pool = random_signatures(600, seed=8)
    test = random_signatures(150, seed=9)
    db = SyntheticDatabase()
    adaptive_rounds(pool, 120, db.measure, db.samples)
    assert len(db.measured) == 120
    assert all(enumerate_candidates(all_strategies(), s) for s in db.measured)
    adaptive, random = _mean_regret(db.measured, test), _mean_regret(pool[:120], test)
    assert adaptive <= random * 1.02, (adaptive, random)
