"""The dispatcher prepares a chosen strategy (compiles its kernel) for the call's own
signature before the call runs it, so that a live check never times a compile: on a
background thread while ``F.conv1d`` answers (no call waits for a compile), or on the call's
own thread when asked."""

from __future__ import annotations

import os
import sys
import threading

import pytest
import torch
import torch.nn.functional as F

import autoconv
from autoconv.choice import Choice
from autoconv.runtime.dispatch import _prepare, dispatcher
from autoconv.runtime.preparing import BACKGROUND_NICENESS, BackgroundPreparations
from autoconv.signature import Signature
from autoconv.strategies import Strategy, register, unregister
from tests.runtime.test_recovery import stored_fastest


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



class Blocking:
    """A preparation that waits for ``release`` (a compile that takes a while), noting the
    thread and the tensors it ran on; ``error`` makes it raise instead of finishing."""

    def __init__(self, error: Exception | None = None) -> None:
        self.release = threading.Event()
        self.done = False
        self.threads: list[threading.Thread] = []
        self.niceness: list[int] = []
        self.tensors: list[tuple[torch.dtype, tuple[int, ...], float]] = []
        self.error = error

    def estimate_s(self, signature, params) -> float:
        return 0.0 if self.done else 10.0

    def __call__(self, signature, params, input, weight, bias) -> None:
        self.threads.append(threading.current_thread())
        if sys.platform.startswith("linux"):
            self.niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        self.tensors.append((input.dtype, tuple(input.shape), float(input.abs().sum())))
        assert self.release.wait(10)
        if self.error is not None:
            raise self.error
        self.done = True


def counted(calls: list[int]):
    def run(*args):
        calls.append(1)
        return F.conv1d(*args)
    return run


@pytest.fixture
def compiled_stored(fresh_autoconv):
    """A registered strategy with a :class:`Blocking` preparation, stored as the fastest for
    a signature (as another process left it); its calls counted."""
    preparation, calls = Blocking(), []
    register(Strategy("compiled", counted(calls), preparation=preparation))
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
    stored_fastest(Signature.of(x, w), ("compiled", 1e-6), ("direct", 1e-3))
    yield preparation, calls, x, w
    dispatcher.preparations.join(10)
    unregister("compiled")


def test_a_stored_decision_is_prepared_in_the_background_while_f_conv1d_answers(
        compiled_stored) -> None:
    preparation, calls, x, w = compiled_stored
    with torch.no_grad(), autoconv.settings.override(mode="predict"):
        for _ in range(3):  # none of these calls waits for the preparation
            torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
        assert calls == [] and len(preparation.threads) == 1  # started once
        assert dispatcher.preparations.under_way() == 1
        assert preparation.threads[0] is not threading.current_thread()
        assert preparation.tensors == [(torch.float32, (2, 4, 200), 0.0)]  # stand-ins
        if sys.platform.startswith("linux"):  # the compile yields the cores to the calls
            ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            assert preparation.niceness == [min(19, ours + BACKGROUND_NICENESS)]
        preparation.release.set()
        dispatcher.preparations.join(10)
        assert dispatcher.preparations.under_way() == 0
        torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
        assert calls == [1]  # prepared: the chosen strategy runs


def test_a_failed_background_preparation_leaves_the_call_to_prepare_itself(
        compiled_stored) -> None:
    preparation, calls, x, w = compiled_stored
    preparation.error = RuntimeError("no compiler")
    with torch.no_grad(), autoconv.settings.override(mode="predict"):
        autoconv.conv1d(x, w)
        preparation.release.set()
        dispatcher.preparations.join(10)
        torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
        assert len(preparation.threads) == 2  # not again in the background: on the call's
        assert preparation.threads[1] is threading.current_thread()  # own thread, once
        assert calls == [1]  # and the call ran (a strategy that fails there is recovered)


def test_preparing_on_the_calls_thread_when_asked(compiled_stored) -> None:
    preparation, calls, x, w = compiled_stored
    preparation.release.set()
    dispatcher.prepare_in_background = False
    try:
        with torch.no_grad(), autoconv.settings.override(mode="predict"):
            autoconv.conv1d(x, w)
    finally:
        dispatcher.prepare_in_background = True
    assert preparation.threads == [threading.current_thread()] and calls == [1]


def test_a_preparation_that_ends_at_once_still_hands_the_call_back(compiled_stored) -> None:
    """The background thread may end before the call that started it has noted its key: the
    key is noted first, so the next call runs the chosen strategy, never F.conv1d for good."""
    preparation, calls, x, w = compiled_stored
    preparation.release.set()  # the preparation ends as soon as it starts
    with torch.no_grad(), autoconv.settings.override(mode="predict"):
        autoconv.conv1d(x, w)
        dispatcher.preparations.join(10)
        autoconv.conv1d(x, w)
    assert calls == [1]


def test_a_preparation_is_under_way_until_its_owner_has_heard_it_ended() -> None:
    """``join`` and ``under_way`` count a preparation until the owner has dropped its interim
    answers: a caller that waited for it never meets one of them."""
    heard, proceed = threading.Event(), threading.Event()

    def on_ready(key) -> None:
        heard.set()
        assert proceed.wait(10)

    preparations = BackgroundPreparations(on_ready)
    preparation = Blocking()
    preparation.release.set()
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
    signature = Signature.of(x, w)
    assert preparations.pending(choice_of(preparation), signature, x, w, None)
    assert heard.wait(10)  # prepared; the owner is dropping its answers
    assert preparations.under_way() == 1
    proceed.set()
    preparations.join(10)
    assert preparations.under_way() == 0
