"""Mode ``live`` through ``autoconv.conv1d``: the first call is answered at once (nothing
measured), later calls explore, the winner is stored as measured and used, every output is
F.conv1d's. The clock is fake: it moves only when a strategy (or F.conv1d) runs."""

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
from autoconv.tuning.exploration import LIVE_NOTE, Exploration
from autoconv.tuning.live_check import LiveCheck
from tests.steady import ManualClock
from tests.test_functional import CASES

pytestmark = pytest.mark.usefixtures("fresh_autoconv")

CPU = torch.device("cpu")
#: scripted seconds per full call
SECONDS = {"direct": 2e-3, "speedy": 0.5e-3}


class FakeCostModel:
    """F.conv1d right, speedy at half its speed (too small a gain for the safe prior to
    leave F.conv1d), F.conv1d's padded-first forms far off."""

    def predict(self, signature, strategy, params, device):
        if params:
            return 1.0
        return {**SECONDS, "speedy": 2 * SECONDS["speedy"]}.get(strategy.name)


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch):
    clock = ManualClock()
    real = autoconv.plain.conv1d

    def plain_conv1d(*args, **kwargs):
        output = real(*args, **kwargs)
        clock.now += SECONDS["direct"] * output.shape[-1] / 196
        return output

    def speedy(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        clock.now += SECONDS["speedy"]
        return F.conv1d(input, weight, bias, stride, padding, dilation, groups)

    monkeypatch.setattr(autoconv.plain, "conv1d", plain_conv1d)
    monkeypatch.setattr(dispatcher, "live_clock", clock)
    monkeypatch.setattr(dispatcher, "live_load", QuietMachine())
    strategy = register(Strategy("speedy", speedy))
    with autoconv.settings.override(mode="live"):
        dispatcher.selector.cost_model = FakeCostModel()
        dispatcher.selector.predictor = None
        yield clock
    unregister(strategy.name)


def stored(signature: Signature) -> dict[str, tuning_db.MeasurementRecord]:
    with tuning_db.connect(autoconv.settings.db_url) as db:
        rows = db.candidates(device_record(CPU).device_id, signature_record(signature))
    return {row.strategy: row for row in rows}


def test_the_first_call_answers_at_once_and_later_calls_find_the_winner(live) -> None:
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
    signature = Signature.of(x, w)
    with torch.no_grad():
        torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
        assert stored(signature) == {}  # nothing measured on the first call
        first = autoconv.select(x, w)
        assert first.origin == "cost_model" and first.strategy == "direct"  # the safe prior
        assert isinstance(dispatcher.runners(x, w, None, 1, 0, 1, 1)[2], Exploration)
        for _ in range(100):
            torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
        choice = autoconv.select(x, w)
    assert (choice.strategy, choice.origin) == ("speedy", "measured")
    rows = stored(signature)
    assert rows["speedy"].median_s == pytest.approx(SECONDS["speedy"])
    assert rows["speedy"].note.startswith(LIVE_NOTE)
    assert rows["direct"].median_s == pytest.approx(SECONDS["direct"])
    # measured now: the live re-check watches it, as any measured decision
    with torch.no_grad():
        assert isinstance(dispatcher.runners(x, w, None, 1, 0, 1, 1)[2], LiveCheck)


def test_a_signature_called_once_is_never_explored(live) -> None:
    for length in range(200, 230):
        x, w = torch.randn(1, 4, length), torch.randn(4, 4, 5)
        with torch.no_grad():
            autoconv.conv1d(x, w)
    with tuning_db.connect(autoconv.settings.db_url) as db:
        assert list(db.measurements()) == []


def test_calls_with_gradients_are_answered_but_not_explored(live) -> None:
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5, requires_grad=True)
    for _ in range(20):
        autoconv.conv1d(x, w).sum().backward()
    assert not isinstance(dispatcher.runners(x, w, None, 1, 0, 1, 1)[2], Exploration)
    assert stored(Signature.of(x, w)) == {}  # noted for a tuning worker instead


def test_a_stored_measurement_is_used_and_not_explored(live) -> None:
    x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
    with torch.no_grad(), autoconv.settings.override(mode="tune", budget_s=0.2):
        autoconv.conv1d(x, w)  # measured in mode tune
    with torch.no_grad(), autoconv.settings.override(mode="live"):
        dispatcher.selector.cost_model = FakeCostModel()
        autoconv.conv1d(x, w)
        assert autoconv.select(x, w).origin == "database"
        assert not isinstance(dispatcher.runners(x, w, None, 1, 0, 1, 1)[2], Exploration)


@pytest.mark.parametrize("x_shape,w_shape,kwargs", CASES)
def test_every_call_of_an_exploration_returns_f_conv1ds_result(x_shape, w_shape, kwargs
                                                                ) -> None:
    # real strategies, the real cost model and clock: whatever is explored, the answer holds
    x, w = torch.randn(*x_shape, dtype=torch.float64), torch.randn(*w_shape,
                                                                    dtype=torch.float64)
    b = torch.randn(w_shape[0], dtype=torch.float64)
    expected = F.conv1d(x, w, b, **kwargs)
    with torch.no_grad(), autoconv.settings.override(mode="live", explore_overhead=1.0):
        for _ in range(60):
            torch.testing.assert_close(autoconv.conv1d(x, w, b, **kwargs), expected)


def test_a_rival_that_raises_is_never_seen_by_the_caller(live) -> None:
    calls = []

    def broken(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        calls.append(1)
        raise RuntimeError("no kernel for this")

    strategy = register(Strategy("broken", broken))
    try:
        SECONDS["broken"] = 1.5e-3  # a rival (too small a gain to be the answer)
        dispatcher.selector.cost_model = FakeCostModel()
        x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
        with torch.no_grad():
            for _ in range(60):
                torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
        assert len(calls) == 1  # failed once, never run again
        with tuning_db.connect(autoconv.settings.db_url) as db:
            failures = db.failures(device_record(CPU).device_id,
                                   signature_record(Signature.of(x, w)))
        assert [(row.strategy, row.note.split(":")[0]) for row in failures] == [
            ("broken", "failed")]
        assert autoconv.select(x, w).strategy == "speedy"
    finally:
        SECONDS.pop("broken")
        unregister(strategy.name)


def test_an_answer_that_raises_is_recovered_and_exploration_goes_on_without_it(live) -> None:
    def broken(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        raise RuntimeError("no kernel for this")

    strategy = register(Strategy("broken", broken))
    try:
        SECONDS["broken"] = 0.1e-3  # 20x F.conv1d by the cost model: the prior's answer
        dispatcher.selector.cost_model = FakeCostModel()
        x, w = torch.randn(2, 4, 200), torch.randn(4, 4, 5)
        with torch.no_grad():
            assert autoconv.select(x, w).strategy == "broken"
            with pytest.warns(RuntimeWarning, match="broken .* raised RuntimeError"):
                first = autoconv.conv1d(x, w)
            torch.testing.assert_close(first, F.conv1d(x, w))
            for _ in range(80):
                torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
            choice = autoconv.select(x, w)
        assert choice.strategy != "broken"
        assert choice.origin == "measured"  # explored again without it, and decided
    finally:
        SECONDS.pop("broken")
        unregister(strategy.name)


@pytest.mark.usefixtures("exploring")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("x_shape,w_shape,kwargs", [
    ((2, 4, 300), (6, 4, 9), {}),
    ((1, 8, 2000), (8, 1, 129), {"groups": 8, "padding": 64}),
    ((2, 3, 100), (5, 3, 4), {"stride": 2, "padding": "valid"})])
def test_calls_under_cpu_autocast_are_explored_and_get_f_conv1ds_result(
        dtype, x_shape, w_shape, kwargs) -> None:
    x, w, b = torch.randn(x_shape), torch.randn(w_shape), torch.randn(w_shape[0])
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
        expected = F.conv1d(x, w, b, **kwargs)
        for _ in range(150):
            out = autoconv.conv1d(x, w, b, **kwargs)
            assert out.dtype == expected.dtype == dtype
            torch.testing.assert_close(out.float(), expected.float(), rtol=0,
                                       atol=0.02 * expected.abs().max().item())
        choice = autoconv.select(x, w, b, **kwargs)
    assert choice.origin == "measured"  # decided on the autocast calls
    with tuning_db.connect(autoconv.settings.db_url) as db:
        signatures = {m.signature.dtype for _, m in db.measurements()}
    assert signatures == {str(dtype).removeprefix("torch.")}
