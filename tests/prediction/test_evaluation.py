"""Grouped cross-validation and its scores, on synthetic measurements (no timing)."""

from __future__ import annotations

import math

import pytest

from autoconv.prediction.evaluation import (
    FittedPicker,
    Scores,
    cross_validate,
    fastest_of_runs,
    group_by_signature,
    markdown,
    plain_conv1d_picker,
    repeatability,
    scipy_picker,
)
from autoconv.prediction.predictor import Sample
from autoconv.signature import Signature
from tests.prediction.fakes import random_signatures, synthetic_samples


def test_scores_summarise_regrets() -> None:
    s = Scores.of("x", [1.0, 1.02, 1.2, 4.0], [True, False, False, False])
    assert (s.count, s.top1, s.exact, s.worst) == (4, 0.5, 0.25, 4.0)
    assert s.within_1_1 == 0.5 and s.within_1_5 == 0.75
    assert s.geomean == pytest.approx((1.02 * 1.2 * 4.0) ** 0.25)
    assert math.isnan(Scores.of("empty", [], []).geomean)
    assert s.method_top1 == s.top1  # without strategy information: ties only
    assert Scores.of("m", [1.0, 1.2], [True, False], [True, True]).method_top1 == 1.0


def test_method_top1_counts_the_right_strategy_with_a_worse_parameter() -> None:
    s = random_signatures(1)[0]
    rows = [Sample(s, "direct", {}, 2.0), Sample(s, "overlap_add", {"block_size": 64}, 1.0),
            Sample(s, "overlap_add", {"block_size": 128}, 1.3)]
    others = random_signatures(5, seed=3)
    samples = rows + [Sample(o, "direct", {}, 1.0) for o in others]

    def pick_block_128(signature, candidates):
        return next((i for i, (_, p) in enumerate(candidates) if p.get("block_size") == 128),
                    0)

    def pick_direct(signature, candidates):
        return next(i for i, (name, _) in enumerate(candidates) if name == "direct")

    evaluation = cross_validate(samples, folds=3,
                                fitter=lambda train: FittedPicker.of(pick_block_128),
                                baselines={"direct": pick_direct})
    learned, direct = evaluation.overall["learned"], evaluation.overall["direct"]
    # On s: the block-128 pick is the right method at regret 1.3; direct is the wrong one.
    assert learned.method_top1 == 1.0 and learned.top1 == 5 / 6
    assert direct.method_top1 == 5 / 6 and direct.worst == 2.0


def test_folds_hold_out_whole_signatures_and_score_every_picker() -> None:
    samples = synthetic_samples(random_signatures(30, seed=11))
    seen: list[set[Signature]] = []

    def fitter(train: list[Sample]) -> FittedPicker:
        seen.append({s.signature for s in train})
        return FittedPicker.of(lambda signature, candidates: 0)

    evaluation = cross_validate(samples, folds=3, fitter=fitter,
                                baselines={"direct": plain_conv1d_picker})
    everything = {s.signature for s in samples}
    assert len(seen) == 3 and all(len(everything - train) == 10 for train in seen)
    assert evaluation.signatures == 30 and evaluation.overall["learned"].count == 30
    assert evaluation.overall["direct"].count == 30
    assert "| learned | 30 |" in markdown(evaluation)


def test_the_learned_model_beats_always_direct_on_held_out_signatures() -> None:
    samples = synthetic_samples(random_signatures(90, seed=12))
    evaluation = cross_validate(samples, folds=3, baselines={"direct": plain_conv1d_picker})
    learned, direct = evaluation.overall["learned"], evaluation.overall["direct"]
    assert learned.geomean < direct.geomean and learned.top1 > direct.top1


def test_too_few_signatures_for_the_folds() -> None:
    samples = synthetic_samples(random_signatures(2, seed=13))
    with pytest.raises(ValueError, match="at least 5"):
        cross_validate(samples)


def test_group_by_signature_keeps_one_row_per_candidate() -> None:
    s = random_signatures(1)[0]
    rows = [Sample(s, "direct", {}, 1.0), Sample(s, "direct", {}, 2.0),
            Sample(s, "fft", {}, 3.0)]
    assert [r.seconds for r in group_by_signature(rows)[s]] == [1.0, 3.0]


def test_scipy_heuristic_applies_to_single_channel_signatures_only() -> None:
    long_kernel = Signature(1, 1, 1, 100_000, 5000, 1, 0, 0, 1, 1, "float32", "cpu")
    short_kernel = Signature(1, 1, 1, 1000, 3, 1, 0, 0, 1, 1, "float32", "cpu")
    candidates = [("direct", {}), ("fft", {}), ("overlap_add", {"block_size": 16384})]
    assert candidates[scipy_picker(long_kernel, candidates)][0] == "fft"
    assert candidates[scipy_picker(short_kernel, candidates)][0] == "direct"
    many = Signature(1, 4, 4, 1000, 3, 1, 0, 0, 1, 1, "float32", "cpu")
    assert scipy_picker(many, candidates) is None


def test_repeatability_scores_one_run_against_another() -> None:
    a, b, c = random_signatures(3, seed=5)
    first = [Sample(a, "direct", {}, 1.0), Sample(a, "fft", {}, 1.1),
             Sample(b, "direct", {}, 2.0), Sample(b, "fft", {}, 1.0),
             Sample(c, "direct", {}, 1.0)]  # c: not in the second run
    second = [Sample(a, "direct", {}, 1.5), Sample(a, "fft", {}, 1.0),  # the order flipped
              Sample(b, "direct", {}, 2.0), Sample(b, "fft", {}, 1.01)]
    scores = repeatability(first, second)
    assert scores.count == 2 and scores.worst == 1.5 and scores.top1 == 0.5
    assert scores.exact == 0.5 and scores.method_top1 == 0.5


def test_fastest_of_runs_keeps_each_candidates_fastest_time() -> None:
    a, b = random_signatures(2, seed=6)
    first = [Sample(a, "direct", {}, 5.0), Sample(a, "fft", {}, 1.1),
             Sample(b, "overlap_add", {"block_size": 64}, 2.0)]
    second = [Sample(a, "direct", {}, 1.0), Sample(a, "fft", {}, 1.3),
              Sample(b, "overlap_add", {"block_size": 64}, 3.0),
              Sample(b, "overlap_add", {"block_size": 128}, 2.5)]  # only the second run
    combined = {(s.signature, s.strategy, s.params.get("block_size")): s.seconds
                for s in fastest_of_runs([first, second])}
    assert combined == {(a, "direct", None): 1.0, (a, "fft", None): 1.1,
                        (b, "overlap_add", 64): 2.0, (b, "overlap_add", 128): 2.5}
    assert fastest_of_runs([first]) == first
