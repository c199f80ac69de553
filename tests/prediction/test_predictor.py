"""The learned predictor on synthetic measurements with a known best (no timing)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingRegressor

from autoconv.prediction.predictor import LearnedPredictor, Sample, candidate_kind
from autoconv.prediction.tree_ensemble import TreeEnsemble
from autoconv.signature import Signature
from autoconv.strategies import all_strategies
from autoconv.tuning.candidates import enumerate_candidates
from tests.prediction.fakes import (
    random_signatures,
    synthetic_samples,
    synthetic_seconds,
    true_best,
)

CPU = torch.device("cpu")
TRAIN = random_signatures(240, seed=1)
HELD_OUT = random_signatures(60, seed=2)


@pytest.fixture(scope="module")
def model() -> LearnedPredictor:
    return LearnedPredictor.fit(synthetic_samples(TRAIN))


def regret(s: Signature, strategy: str, params: dict) -> float:
    best_name, best_params = true_best(s)
    return synthetic_seconds(s, strategy, params) / synthetic_seconds(s, best_name, best_params)


def test_recovers_the_known_best_on_unseen_signatures(model: LearnedPredictor) -> None:
    regrets = []
    for s in HELD_OUT:
        candidates = enumerate_candidates(all_strategies(), s)
        choice = model.decide(s, candidates, CPU).choice
        predicted = model.predict_seconds(s, [(c.name, dict(c.params)) for c in candidates])
        # the pick is the candidate predicted fastest, with that prediction as its time
        assert choice.source == "predicted" and choice.median_s == np.nanmin(predicted)
        regrets.append(regret(s, choice.strategy, choice.params_dict))
    regrets = np.array(regrets)
    assert np.mean(regrets <= 1.1) >= 0.85
    assert np.exp(np.mean(np.log(regrets))) <= 1.1


def test_recovers_the_best_on_training_signatures(model: LearnedPredictor) -> None:
    picks = [model.decide(s, enumerate_candidates(all_strategies(), s), CPU).choice for s in TRAIN]
    regrets = np.array([regret(s, c.strategy, c.params_dict) for s, c in zip(TRAIN, picks)])
    assert np.mean(regrets <= 1.1) >= 0.95  # the 3 % noise blurs near-ties, nothing more


def test_only_candidates_it_is_given_can_be_picked(model: LearnedPredictor) -> None:
    # int64 has no FFT strategy: the tuner enumerates direct alone, so direct it is.
    s = Signature(1, 1, 1, 100_000, 4000, 1, 0, 0, 1, 1, "int64", "cpu")
    candidates = enumerate_candidates(all_strategies(), s)
    assert [c.name for c in candidates] == ["direct"]
    assert model.decide(s, candidates, CPU).choice.strategy == "direct"


def test_strategies_the_model_never_saw_are_never_predicted(model: LearnedPredictor) -> None:
    s = HELD_OUT[0]
    seconds = model.predict_seconds(s, [("winograd", {}), ("direct", {})])
    assert np.isnan(seconds[0]) and seconds[1] > 0
    assert model.rank(s, [("winograd", {})]) is None


def test_confidence_needs_a_margin_and_a_nearby_measurement(model: LearnedPredictor) -> None:
    near = dataclasses.replace(TRAIN[0], length=TRAIN[0].length + 1)
    candidates = enumerate_candidates(all_strategies(), near)
    decision = model.decide(near, candidates, CPU)
    # one sample longer than TRAIN[0] (no padding): log2 of the padded lengths' ratio away
    assert decision.distance == pytest.approx(np.log2(near.length / TRAIN[0].length))
    assert decision.confident == (decision.margin >= model.margin)
    far = Signature(512, 1024, 1024, 50, 3, 1, 0, 0, 1, 1, "float32", "cpu")
    assert model.distance(far) > model.max_distance
    far_candidates = enumerate_candidates(all_strategies(), far)
    assert not model.decide(far, far_candidates, CPU).confident
    # a margin of 1 is always met (the pick is the fastest): far fails on distance alone
    any_margin = dataclasses.replace(model, margin=1.0)
    assert not any_margin.decide(far, far_candidates, CPU).confident
    assert dataclasses.replace(any_margin, max_distance=float("inf")).decide(
        far, far_candidates, CPU).confident
    sure = dataclasses.replace(model, margin=1.0, max_distance=float("inf"))
    assert sure.decide(near, candidates, CPU).confident


def test_margin_is_over_other_kinds_of_candidate(model: LearnedPredictor) -> None:
    s = HELD_OUT[0]
    blocks = [("overlap_add", {"block_size": 256}), ("overlap_add", {"block_size": 512})]
    assert model.rank(s, blocks).margin == float("inf")  # neighbouring block sizes
    directs = [("direct", {}), ("direct", {"pre_pad": 1})]
    ranking = model.rank(s, directs)
    seconds = sorted(ranking.seconds)
    assert ranking.margin == pytest.approx(seconds[1] / seconds[0])
    assert candidate_kind("overlap_add", {"block_size": 64}) == ("overlap_add", ())


def test_fit_rejects_empty_or_bad_data() -> None:
    with pytest.raises(ValueError, match="cannot fit a predictor without measurements"):
        LearnedPredictor.fit([])
    with pytest.raises(ValueError, match="every measurement needs a positive time"):
        LearnedPredictor.fit([Sample(TRAIN[0], "direct", {}, 0.0)])


def test_tree_ensemble_predicts_exactly_as_scikit_learn(tmp_path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = X[:, 0] * 3 + np.sin(X[:, 1]) + X[:, 2] * X[:, 3]
    fitted = HistGradientBoostingRegressor(max_iter=30, max_depth=5).fit(X, y)
    ensemble = TreeEnsemble.from_sklearn(fitted)
    np.testing.assert_allclose(ensemble.predict(X), fitted.predict(X), rtol=0, atol=1e-9)
    ensemble.save(tmp_path / "model.npz", note="x")
    loaded, meta = TreeEnsemble.load(tmp_path / "model.npz")
    np.testing.assert_allclose(loaded.predict(X[:7]), fitted.predict(X[:7]), atol=1e-9)
    assert str(meta["note"]) == "x"
