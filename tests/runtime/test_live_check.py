"""Decisions re-checked on live calls (autoconv.tuning.live_check), with an injected clock:
a stored winner made slow is decided again, the database corrected; a confirmed one is
checked less often; a busy machine's samples are not evidence. (Notes for a tuning worker,
``refresh_s``, are off here: tests/runtime/test_refresh.py covers them.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import autoconv
import tuning_db
from autoconv.runtime import dispatcher
from autoconv.signature import Signature
from autoconv.storage.store import device_record, signature_record
from autoconv.strategies import Strategy, register, unregister
from autoconv.tuning.contention import QuietMachine
from autoconv.tuning.live_check import WINDOW
from tuning_db.records import CORRECTED_NOTE

pytestmark = pytest.mark.usefixtures("fresh_autoconv")

CPU = torch.device("cpu")


class FakeClock:
    """Moves only when a strategy under test runs (by the seconds it is told to take)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch):
    fake = FakeClock()
    monkeypatch.setattr(dispatcher, "live_clock", fake)
    monkeypatch.setattr(dispatcher, "live_load", QuietMachine())
    return fake


def sluggish_strategy(clock: FakeClock, seconds: dict[str, float]) -> Strategy:
    """A correct strategy that 'takes' ``seconds["sluggish"]`` on the fake clock per call,
    while F.conv1d is made to 'take' ``seconds["direct"]``."""
    def run(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, **params):
        clock.now += seconds["sluggish"]
        return F.conv1d(input, weight, bias, stride, padding, dilation, groups)
    return Strategy("sluggish", run)


@pytest.fixture
def timed_plain(clock, monkeypatch):
    """F.conv1d as autoconv calls it, 'taking' ``seconds["direct"]`` on the fake clock."""
    seconds = {"direct": 1e-3, "sluggish": 1e-3}
    real = autoconv.plain.conv1d

    def plain_conv1d(*args, **kwargs):
        clock.now += seconds["direct"]
        return real(*args, **kwargs)

    monkeypatch.setattr(autoconv.plain, "conv1d", plain_conv1d)
    strategy = register(sluggish_strategy(clock, seconds))
    yield seconds
    unregister(strategy.name)


def store(signature: Signature, *rows: tuple[str, float]) -> None:
    with tuning_db.connect(autoconv.settings.db_url) as db:
        db.record_many(device_record(CPU), [
            tuning_db.MeasurementRecord(signature=signature_record(signature), strategy=name,
                                        median_s=seconds, samples=5, autoconv_version="test")
            for name, seconds in rows])


def stored_rows(signature: Signature) -> dict[str, tuning_db.MeasurementRecord]:
    with tuning_db.connect(autoconv.settings.db_url) as db:
        rows = db.candidates(device_record(CPU).device_id, signature_record(signature))
    return {row.strategy: row for row in rows}


def test_a_winner_made_slow_is_decided_again_on_live_calls_and_corrected_in_the_database(
        timed_plain) -> None:
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
    signature = Signature.of(x, w)
    # stored: sluggish faster than F.conv1d (say, F.conv1d's samples were disturbed) ...
    store(signature, ("sluggish", 0.5e-3), ("direct", 0.6e-3))
    # ... but on live calls it is 40% slower than F.conv1d (and within 1.5x of its stored time)
    timed_plain.update(sluggish=0.7e-3, direct=0.5e-3)
    with torch.no_grad(), autoconv.settings.override(mode="predict", refresh_s=0, recheck_every=2):
        assert autoconv.select(x, w).strategy == "sluggish"
        for _ in range(4 * WINDOW * 2):
            torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
        choice = autoconv.select(x, w)
    assert (choice.strategy, choice.origin) == ("direct", "corrected")
    rows = stored_rows(signature)
    assert rows["sluggish"].median_s == pytest.approx(0.7e-3)
    assert rows["sluggish"].note.startswith(CORRECTED_NOTE)
    assert "against F.conv1d's 0.5 ms" in rows["sluggish"].note
    assert rows["direct"].median_s == pytest.approx(0.5e-3) and rows["direct"].samples == WINDOW


def test_a_winner_slower_than_its_stored_time_is_corrected_without_timing_a_costly_reference(
        timed_plain) -> None:
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
    signature = Signature.of(x, w)
    store(signature, ("sluggish", 1e-3), ("direct", 50e-3), ("fft", 2e-3))
    timed_plain["sluggish"] = 3e-3  # 3x its stored time; F.conv1d (50 ms) too costly to time
    with torch.no_grad(), autoconv.settings.override(mode="predict", refresh_s=0, recheck_every=1):
        for _ in range(WINDOW):
            autoconv.conv1d(x, w)
        choice = autoconv.select(x, w)
    assert (choice.strategy, choice.origin) == ("fft", "corrected")
    assert stored_rows(signature)["direct"].samples == 5  # never timed on a live call


def test_a_winner_slower_than_its_stored_time_but_not_than_f_conv1d_live_stands(
        timed_plain) -> None:
    """Live calls run on inputs fresh from the layer before, out of cache: a memory-bound
    winner may take 2-3x its stored time there, and F.conv1d timed on the same calls, not
    the stored time, says whether it still wins."""
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
    signature = Signature.of(x, w)
    store(signature, ("sluggish", 0.4e-3), ("direct", 1.4e-3), ("fft", 0.8e-3))
    timed_plain.update(sluggish=1.2e-3, direct=2.5e-3)  # 3x its stored time, F.conv1d slower
    with torch.no_grad(), autoconv.settings.override(mode="predict", refresh_s=0, recheck_every=1):
        for _ in range(4 * WINDOW):
            autoconv.conv1d(x, w)
        choice = autoconv.select(x, w)
        watch = dispatcher.runners(x, w, None, 1, 0, 1, 1)[2]
    assert choice.strategy == "sluggish" and choice.origin != "corrected"
    assert not watch.corrected
    assert stored_rows(signature)["sluggish"].median_s == pytest.approx(0.4e-3)


def watched_calls(calls: int, every: int):
    """``calls`` calls of a signature stored with sluggish 2x faster than F.conv1d, sampled
    one in ``every``; returns its live check, after checking the decision stands."""
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
    store(Signature.of(x, w), ("sluggish", 0.5e-3), ("direct", 1e-3))
    with torch.no_grad(), autoconv.settings.override(mode="predict", refresh_s=0, recheck_every=every):
        for _ in range(calls):
            autoconv.conv1d(x, w)
        assert autoconv.select(x, w).strategy == "sluggish"
        return dispatcher.runners(x, w, None, 1, 0, 1, 1)[2]


def test_a_confirmed_decision_is_checked_less_often(timed_plain) -> None:
    timed_plain["sluggish"] = 0.5e-3
    watch = watched_calls(60, every=2)
    assert watch is not None and watch.interval > 2 and not watch.corrected


def test_samples_taken_on_a_busy_machine_are_not_evidence(timed_plain, monkeypatch) -> None:
    class Busy(QuietMachine):
        def busy(self) -> bool:
            return True

    monkeypatch.setattr(dispatcher, "live_load", Busy())
    timed_plain["sluggish"] = 10e-3
    watch = watched_calls(30, every=1)
    assert watch.disturbed == 30 and not watch.winner_times


def test_calls_decided_for_f_conv1d_or_under_autocast_are_not_watched(timed_plain) -> None:
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
    store(Signature.of(x, w), ("sluggish", 0.5e-3), ("direct", 1e-3))
    with torch.no_grad(), autoconv.settings.override(mode="predict", refresh_s=0):
        y = torch.randn(2, 4, 300)
        store(Signature.of(y, w), ("direct", 1e-3), ("sluggish", 2e-3))
        assert dispatcher.runners(y, w, None, 1, 0, 1, 1)[2] is None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert dispatcher.runners(x, w, None, 1, 0, 1, 1)[2] is None
    with autoconv.settings.override(mode="predict", refresh_s=0, recheck_every=0):
        assert dispatcher.runners(x, w, None, 1, 0, 1, 1)[2] is None


def training_signature(x: torch.Tensor, w: torch.Tensor) -> Signature:
    with torch.enable_grad():
        return Signature.of(x, w.detach().requires_grad_())


def test_a_training_decision_made_slow_is_decided_again_and_the_callers_gradients_kept(
        timed_plain) -> None:
    """A call that records gradients is timed as a forward and backward on detached copies;
    the call itself runs in the caller's graph, whose gradients and hooks see it once."""
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5, requires_grad=True)
    signature = training_signature(x, w)
    assert signature.requires_grad
    store(signature, ("sluggish", 0.5e-3), ("direct", 0.6e-3))
    timed_plain.update(sluggish=0.7e-3, direct=0.5e-3)
    hooked = []
    w.register_hook(lambda grad: hooked.append(grad.clone()))
    calls = 4 * WINDOW * 2
    with autoconv.settings.override(mode="predict", refresh_s=0, recheck_every=2):
        assert autoconv.select(x, w).strategy == "sluggish"
        for _ in range(calls):
            autoconv.conv1d(x, w).square().sum().backward()
        choice = autoconv.select(x, w)
    assert (choice.strategy, choice.origin) == ("direct", "corrected")
    rows = stored_rows(signature)
    assert rows["sluggish"].note.startswith(CORRECTED_NOTE)
    assert rows["sluggish"].median_s == pytest.approx(0.7e-3)
    reference = w.detach().requires_grad_()
    F.conv1d(x, reference).square().sum().backward()
    assert len(hooked) == calls  # one gradient per real backward, none for the timed steps
    torch.testing.assert_close(w.grad, calls * reference.grad)


def test_training_calls_under_checkpointing_are_sampled_out_of_its_sight(timed_plain) -> None:
    """Non-reentrant checkpointing counts the tensors a forward saves, and recomputes the
    forward in backward: the timed step runs under saved-tensor hooks of its own, so
    checkpointing sees the call's tensors alone, and the gradients are F.conv1d's."""
    from torch.utils.checkpoint import checkpoint

    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5, requires_grad=True)
    store(training_signature(x, w), ("sluggish", 0.5e-3), ("direct", 1e-3))
    timed_plain["sluggish"] = 0.5e-3
    calls = 3 * WINDOW
    with autoconv.settings.override(mode="predict", refresh_s=0, recheck_every=1):
        for _ in range(calls):
            checkpoint(autoconv.conv1d, x, w, use_reentrant=False).sum().backward()
        watch = dispatcher.runners(x, w, None, 1, 0, 1, 1)[2]
    assert watch is not None and watch.training
    assert watch.winner_times or watch.interval > 1  # sampled, and confirmed
    reference = w.detach().requires_grad_()
    F.conv1d(x, reference).sum().backward()
    torch.testing.assert_close(w.grad, calls * reference.grad)


def test_a_training_sample_that_fails_is_lost_never_the_call(timed_plain, monkeypatch) -> None:
    from autoconv.tuning import live_check

    def failing(*args) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(live_check, "training_step", failing)
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5, requires_grad=True)
    store(training_signature(x, w), ("sluggish", 0.5e-3), ("direct", 1e-3))
    with autoconv.settings.override(mode="predict", refresh_s=0, recheck_every=1):
        for _ in range(2 * WINDOW):
            y = autoconv.conv1d(x, w)
            torch.testing.assert_close(y, F.conv1d(x, w))
        watch = dispatcher.runners(x, w, None, 1, 0, 1, 1)[2]
    assert not watch.winner_times and not watch.corrected


def test_a_predicted_time_is_no_bar_only_f_conv1d_live_is(timed_plain, monkeypatch) -> None:
    from autoconv.choice import Choice
    from autoconv.strategies import get

    predicted = Choice.make(get("sluggish"), source="cost_model", median_s=1e-6)
    monkeypatch.setattr(dispatcher, "choose", lambda signature, device: predicted)
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
    with torch.no_grad(), autoconv.settings.override(mode="predict", refresh_s=0, recheck_every=1):
        watch = dispatcher.runners(x, w, None, 1, 0, 1, 1)[2]
        assert watch is not None and watch.stored_s is None
        timed_plain.update(sluggish=1e-3, direct=1e-3)  # 1000x its prediction, tied live
        for _ in range(4 * WINDOW):
            autoconv.conv1d(x, w)
    assert not watch.corrected


def test_calls_inside_a_transform_are_not_timed(timed_plain) -> None:
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
    store(Signature.of(x, w), ("sluggish", 0.5e-3), ("direct", 1e-3))
    timed_plain["sluggish"] = 10e-3  # would be corrected if timed
    with torch.no_grad(), autoconv.settings.override(mode="predict", refresh_s=0, recheck_every=1):
        autoconv.conv1d(x, w)  # decided, and watched, outside the transform
        watch = dispatcher.runners(x, w, None, 1, 0, 1, 1)[2]
        batched = torch.func.vmap(lambda xi: autoconv.conv1d(xi, w))(torch.randn(3, 2, 4, 200))
        assert batched.shape == (3, 2, 4, 196)
    assert not watch.corrected and len(watch.winner_times) <= 1
