"""Answers given without measuring, and live exploration, never pick a candidate whose
strategy must first be prepared (compile a kernel): a live call must not wait for it."""

from __future__ import annotations

import torch

from autoconv.settings import Settings
from autoconv.strategies import Strategy, get
from autoconv.tuning.candidates import Candidate
from autoconv.tuning.selector import Selector
from tests.tuning.test_selector import SIG, FakeStore, correct

CPU = torch.device("cpu")
DIRECT = get("direct")  # the registry's: exploration adds it as the reference


class Pending:
    """A preparation not done yet (``done`` flips it)."""

    def __init__(self) -> None:
        self.done = False

    def estimate_s(self, signature, params) -> float:
        return 0.0 if self.done else 5.0

    def __call__(self, signature, params, input, weight, bias) -> None:
        self.done = True


class Predicted:
    """A cost model: the compiled strategy 100x faster than ``F.conv1d``."""

    def predict(self, signature, strategy, params, device) -> float:
        return 1e-5 if strategy.name == "compiled" else 1e-3


def selector_with(preparation: Pending, mode: str) -> tuple[Selector, Strategy]:
    compiled = Strategy("compiled", correct, preparation=preparation)
    selector = Selector(strategies=[DIRECT, compiled], store=FakeStore(),
                        cost_model=Predicted(),
                        settings=Settings(bucket_lengths=False, mode=mode))
    return selector, compiled


def test_the_cost_models_answer_skips_a_strategy_until_it_is_prepared() -> None:
    preparation = Pending()
    selector, _ = selector_with(preparation, "predict")
    assert selector.choose(SIG, CPU).strategy == "direct"  # 100x predicted, but not ready
    preparation.done = True
    fresh, _ = selector_with(preparation, "predict")
    assert fresh.choose(SIG, CPU).strategy == "compiled"


def test_live_exploration_leaves_out_a_strategy_until_it_is_prepared() -> None:
    preparation = Pending()
    selector, compiled = selector_with(preparation, "live")
    answer = Candidate(DIRECT, ())
    arms = [c for c, _ in selector.explorable(SIG, CPU, answer)]
    assert arms[0] == answer and Candidate(compiled, ()) not in arms
    preparation.done = True
    arms = [c for c, _ in selector.explorable(SIG, CPU, answer)]
    assert arms[0] == answer and arms[1] == Candidate(compiled, ())  # the fastest rival
    assert compiled.is_ready(SIG, {}) and not Strategy(
        "again", correct, preparation=Pending()).is_ready(SIG, {})
