"""The dispatcher prepares a chosen strategy (compiles its kernel) for the call's own
signature before the call runs, so that a live check never times a compile."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import autoconv
from autoconv.choice import Choice
from autoconv.runtime.dispatch import _prepare
from autoconv.signature import Signature
from autoconv.strategies import Strategy


class Recording:
    """A preparation that records what it was asked to prepare (or raises)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.prepared: list[tuple[Signature, dict, tuple[int, ...]]] = []
        self.error = error

    def estimate_s(self, signature, params) -> float:
        return 1.0

    def __call__(self, signature, params, input, weight, bias) -> None:
        if self.error is not None:
            raise self.error
        self.prepared.append((signature, dict(params), tuple(input.shape)))


def choice_of(preparation: Recording) -> Choice:
    return Choice.make(Strategy("compiled", F.conv1d, preparation=preparation), {},
                       source="measured")


def test_the_chosen_strategy_is_prepared_for_the_calls_own_signature() -> None:
    preparation = Recording()
    x, w = torch.randn(2, 4, 1000), torch.randn(4, 1, 5)
    signature = Signature.of(x, w, None, 1, 2, 1, 4)
    _prepare(choice_of(preparation), signature, x, w, None)
    assert preparation.prepared == [(signature, {}, (2, 4, 1000))]


def test_no_preparation_under_autocast_or_while_tracing_and_a_failure_is_left_to_the_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    preparation = Recording()
    x, w = torch.randn(2, 4, 100), torch.randn(4, 1, 5)
    signature = Signature.of(x, w, None, 1, 2, 1, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _prepare(choice_of(preparation), signature, x, w, None)
    monkeypatch.setattr(autoconv.contexts, "may_measure", lambda device: False)
    _prepare(choice_of(preparation), signature, x, w, None)
    assert preparation.prepared == []
    monkeypatch.undo()
    _prepare(choice_of(Recording(RuntimeError("no compiler"))), signature, x, w, None)  # no raise

