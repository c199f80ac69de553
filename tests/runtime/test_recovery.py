"""A remembered strategy that raises at call time: F.conv1d answers, the caller never sees the
exception, and the signature is decided again without it; in mode predict and in mode live
(where the calls that follow are explored)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import autoconv
import tuning_db
from autoconv.runtime import dispatcher
from autoconv.signature import Signature
from autoconv.storage.store import device_record, signature_record
from autoconv.strategies import Strategy, register, unregister

pytestmark = pytest.mark.usefixtures("fresh_autoconv")


def kaboom(*args, **kwargs):
    raise RuntimeError("kaboom")


@pytest.fixture
def broken():
    strategy = register(Strategy("broken", kaboom))
    yield strategy
    unregister("broken")


def stored_fastest(signature: Signature, *winners: tuple[str, float]) -> None:
    """Rows for ``signature`` on this CPU, as another process (or machine) left them (the
    length stays under the bucketing threshold, so the row is the signature's own)."""
    record = signature_record(signature)
    with tuning_db.connect(autoconv.settings.db_url) as db:
        db.record_many(device_record(torch.device("cpu")), [
            tuning_db.MeasurementRecord(signature=record, strategy=name, median_s=seconds,
                                        samples=5, autoconv_version="test")
            for name, seconds in winners])


@pytest.mark.parametrize("mode", ["predict", "live"])
@pytest.mark.parametrize("module", [False, True], ids=["conv1d", "Conv1d"])
def test_the_call_gets_f_conv1ds_result_and_the_next_call_another_strategy(broken, module,
                                                                           mode) -> None:
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
    # a layer's call without gradients is decided as one whose weight is reused
    signature = dataclasses.replace(Signature.of(x, w), weight_reused=module)
    stored_fastest(signature, ("broken", 1e-6), ("direct", 1e-3))
    layer = autoconv.Conv1d(4, 4, 5, bias=False)
    with torch.no_grad():
        layer.weight.copy_(w)
    call = (lambda: layer(x)) if module else (lambda: autoconv.conv1d(x, w))
    with torch.no_grad(), autoconv.settings.override(mode=mode):
        assert autoconv.select(signature).strategy == "broken"
        with pytest.warns(RuntimeWarning, match=r"broken \{\} raised RuntimeError: kaboom .*"
                                                r"decided again without it"):
            out = call()
        torch.testing.assert_close(out, F.conv1d(x, w))
        assert autoconv.select(signature).strategy == "direct"  # never broken again
        for _ in range(30):  # mode live: measured rows are used, not explored
            torch.testing.assert_close(call(), F.conv1d(x, w))


@pytest.mark.parametrize("mode", ["predict", "live"])
def test_a_call_f_conv1d_refuses_still_gets_its_error(broken, mode) -> None:
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
    stored_fastest(Signature.of(x, w), ("broken", 1e-6))
    with autoconv.settings.override(mode=mode):
        autoconv.conv1d(x, w)  # F.conv1d answered; broken is discarded
        with pytest.raises(RuntimeError) as theirs:
            F.conv1d(x, w[None])
        with pytest.raises(RuntimeError) as ours:
            autoconv.conv1d(x, w[None])
        assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("mode", ["tune", "live"])
def test_a_tuned_strategy_that_raises_later_is_dropped_and_the_signature_tuned_again(
        mode) -> None:
    calls = []

    def flaky(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        calls.append(1)
        if len(calls) > 1:  # fine while measured, broken once in service
            raise MemoryError("out of memory")
        return F.conv1d(input, weight, bias, stride, padding, dilation, groups) * 1.0

    register(Strategy("flaky", flaky))
    try:
        x, w = torch.randn(1, 2, 200), torch.randn(2, 2, 3)
        stored_fastest(Signature.of(x, w), ("flaky", 1e-7), ("direct", 1e-3))
        with autoconv.settings.override(mode=mode):
            with pytest.warns(RuntimeWarning, match="flaky"):
                for _ in range(3):
                    torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
            assert autoconv.select(x, w).strategy == "direct"
    finally:
        unregister("flaky")
        dispatcher.reset()
