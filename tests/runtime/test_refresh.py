"""Answers given without a measurement (mode predict): noted in the database's wanted table
with the calls seen, and replaced once a measured answer is stored (autoconv.runtime.refresh),
never by a query per call."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import autoconv
import tuning_db
from autoconv.offline.wanted import wanted_signatures
from autoconv.runtime import dispatcher
from autoconv.runtime.refresh import COUNT_EVERY, CallCounter
from autoconv.signature import Signature
from autoconv.storage.store import device_record, signature_record

pytestmark = pytest.mark.usefixtures("fresh_autoconv")

CPU = torch.device("cpu")


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch):
    """Mode predict, refreshed by the test (no background thread)."""
    monkeypatch.setattr(dispatcher, "refresh_in_background", False)
    with autoconv.settings.override(mode="predict", recheck_every=0):
        yield dispatcher


def store_measured(signature: Signature, strategy: str = "direct") -> None:
    """What a tuning worker stores: a measurement of ``signature`` on this machine."""
    with tuning_db.connect(autoconv.settings.db_url) as db:
        db.record_many(device_record(CPU), [tuning_db.MeasurementRecord(
            signature=signature_record(signature), strategy=strategy, median_s=1e-3,
            samples=5, autoconv_version="test")])


def test_an_unmeasured_answer_is_noted_and_replaced_once_measured(serving) -> None:
    x, w = torch.randn(2, 4, 300), torch.randn(4, 4, 9)
    signature = dispatcher.selector.key_signature(Signature.of(x, w))  # its length bucketed
    with torch.no_grad():
        for _ in range(COUNT_EVERY + 10):
            torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
    assert autoconv.select(x, w).origin in ("predicted", "cost_model")
    assert serving.refresher.refresh() == 0  # the notes are written; nothing measured yet
    with tuning_db.connect(autoconv.settings.db_url) as db:
        [row] = db.wanted(device_record(CPU).device_id)
    assert row.signature == signature_record(signature)
    assert row.calls == COUNT_EVERY + 1  # the first call, then one note per COUNT_EVERY
    assert wanted_signatures(autoconv.settings.db_url) == [signature]
    store_measured(signature)  # a worker measured it
    assert serving.refresher.refresh() == 1
    choice = autoconv.select(x, w)
    assert choice.origin == "database"
    with torch.no_grad():
        torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
    assert serving.refresher.waiting() == set()
    assert wanted_signatures(autoconv.settings.db_url) == []


def test_measured_and_degenerate_answers_are_not_noted(serving) -> None:
    x, w = torch.randn(2, 4, 300), torch.randn(4, 4, 9)
    store_measured(dispatcher.selector.key_signature(Signature.of(x, w)))
    with torch.no_grad():
        autoconv.conv1d(x, w)
        autoconv.conv1d(torch.randn(0, 4, 300), w)
    assert serving.refresher.waiting() == set()


def test_refresh_off_notes_nothing(serving) -> None:
    with autoconv.settings.override(refresh_s=0), torch.no_grad():
        x, w = torch.randn(2, 4, 300), torch.randn(4, 4, 9)
        autoconv.conv1d(x, w)
        assert dispatcher.runners(x, w, None, 1, 0, 1, 1)[2] is None


def test_the_counter_hands_the_live_recheck_its_calls() -> None:
    class Check:
        def __init__(self) -> None:
            self.countdown, self.sampled_calls = 5, 0

        def sampled(self, run, *args):
            self.sampled_calls += 1
            self.countdown = 5
            return run(*args)

    notes: list[int] = []
    check = Check()
    counter = CallCounter(notes.append, check)  # type: ignore[arg-type]
    calls = 0
    for _ in range(23):  # the hot path: decrement, and hand over at zero
        counter.countdown -= 1
        if counter.countdown <= 0:
            counter.sampled(lambda *a: None, None, None, None, 1, 0, 1, 1)
        calls += 1
    assert sum(notes) <= calls and sum(notes) >= calls - 5
    assert check.sampled_calls == 23 // 5  # exactly as often as it would run alone
