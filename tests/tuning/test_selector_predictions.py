"""The confidence rule in the selector (mode ``tune``), with a fake predictor and timer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autoconv.choice import Choice
from autoconv.settings import Settings
from autoconv.signature import Signature
from autoconv.strategies import Strategy, direct
from autoconv.tuning.selector import Selector
from autoconv.tuning.timing import Timing

CPU = torch.device("cpu")
SIG = Signature(2, 3, 4, 300, 5, 1, 2, 2, 1, 1, "float32", "cpu", False)


def other(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, **params):
    return F.conv1d(input, weight, bias, stride, padding, dilation, groups)


STRATEGIES = [Strategy("direct", direct, reference=True), Strategy("other", other)]


@dataclass
class Prediction:
    choice: Choice
    confident: bool


class FakePredictor:
    def __init__(self, confident: bool | None) -> None:
        self.confident = confident
        self.asked = 0

    def decide(self, signature, candidates, device):
        self.asked += 1
        if self.confident is None:
            return None
        return Prediction(Choice.make(STRATEGIES[1], source="predicted"), self.confident)


class FakeTimer:
    def __init__(self) -> None:
        self.timed = 0

    def __call__(self, candidates, *, device, deadline, max_samples, min_samples=1, **_):
        self.timed += 1
        return [Timing(1.0 if c.candidate.name == "direct" else 2.0, 0.0, 5) for c in candidates]


class ListStore:
    def __init__(self) -> None:
        self.recorded = []

    def candidates(self, signature, device):
        return []

    def record(self, signature, device, outcomes):
        self.recorded.extend(outcomes)


def selector(predictor, mode="tune"):
    timer, store = FakeTimer(), ListStore()
    chosen = Selector(strategies=STRATEGIES, timer=timer, store=store, predictor=predictor,
                      settings=Settings(mode=mode, bucket_lengths=False))
    return chosen, timer, store


def test_a_confident_prediction_is_used_without_measuring() -> None:
    predictor = FakePredictor(confident=True)
    chosen, timer, store = selector(predictor)
    choice = chosen.choose(SIG, CPU)
    assert (choice.strategy, choice.source) == ("other", "predicted")
    assert timer.timed == 0 and store.recorded == [] and predictor.asked == 1


def test_an_unsure_prediction_is_measured_and_recorded() -> None:
    chosen, timer, store = selector(FakePredictor(confident=False))
    choice = chosen.choose(SIG, CPU)
    assert (choice.strategy, choice.source) == ("direct", "measured")
    assert timer.timed == 1 and {o.candidate.name for o in store.recorded} == {"direct",
                                                                             "other"}


def test_no_prediction_means_measuring() -> None:
    predictor = FakePredictor(confident=None)
    chosen, timer, store = selector(predictor)
    choice = chosen.choose(SIG, CPU)
    assert (choice.strategy, choice.source) == ("direct", "measured")  # timed 1 s against 2 s
    assert timer.timed == 1 and predictor.asked == 1
    assert {o.candidate.name for o in store.recorded} == {"direct", "other"}


def test_mode_predict_uses_even_an_unsure_prediction() -> None:
    predictor = FakePredictor(confident=False)
    chosen, timer, store = selector(predictor, mode="predict")
    choice = chosen.choose(SIG, CPU)
    assert (choice.strategy, choice.source) == ("other", "predicted")
    assert timer.timed == 0 and store.recorded == [] and predictor.asked == 1
