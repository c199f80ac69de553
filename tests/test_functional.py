"""autoconv.conv1d, autoconv.select and autoconv.explain: results equal to F.conv1d, the
database round trip, modes, threads, autograd contexts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import autoconv
from autoconv.runtime.dispatch import dispatcher
from autoconv.signature import Signature
from tests.concurrency import run_in_threads

pytestmark = pytest.mark.usefixtures("fresh_autoconv")


CASES = [
    # (input shape, weight shape, kwargs)
    ((2, 3, 200), (4, 3, 5), {}),
    ((2, 4, 300), (4, 1, 33), {"groups": 4, "padding": "same"}),
    ((1, 2, 500), (2, 2, 64), {"stride": 3, "padding": 7}),
    ((3, 4, 256), (6, 2, 3), {"dilation": 4, "groups": 2, "padding": (2,)}),
    ((1, 1, 2000), (1, 1, 301), {"padding": "valid"}),
    ((5, 300), (2, 5, 7), {}),  # unbatched
]


@pytest.mark.parametrize("x_shape,w_shape,kwargs", CASES)
def test_conv1d_matches_f_conv1d(x_shape, w_shape, kwargs) -> None:
    x = torch.randn(*x_shape, dtype=torch.float64)
    w = torch.randn(*w_shape, dtype=torch.float64)
    b = torch.randn(w_shape[0], dtype=torch.float64)
    expected = F.conv1d(x, w, b, **kwargs)
    for _ in range(2):  # the tuning call and the cached call
        torch.testing.assert_close(autoconv.conv1d(x, w, b, **kwargs), expected)


def test_gradients_match_f_conv1d() -> None:
    x = torch.randn(2, 3, 400, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 3, 65, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    grads = torch.autograd.grad(autoconv.conv1d(x, w, b, padding=32).square().sum(), (x, w, b))
    expected = torch.autograd.grad(F.conv1d(x, w, b, padding=32).square().sum(), (x, w, b))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


def test_errors_are_those_of_f_conv1d() -> None:
    x, w = torch.randn(1, 2, 10), torch.randn(1, 3, 3)
    for args, kwargs in [((x, w), {}), ((torch.randn(1, 3, 10), w), {"stride": 0})]:
        with pytest.raises(RuntimeError) as theirs:
            F.conv1d(*args, **kwargs)
        with pytest.raises(RuntimeError) as ours:
            autoconv.conv1d(*args, **kwargs)
        assert type(ours.value) is type(theirs.value)
        assert str(ours.value) == str(theirs.value)  # e.g. "... to have 3 channels, but got 2"


def test_list_padding_is_accepted() -> None:
    x, w = torch.randn(1, 2, 50), torch.randn(2, 2, 5)
    torch.testing.assert_close(autoconv.conv1d(x, w, padding=[2]), F.conv1d(x, w, padding=[2]))


def test_select_reports_where_the_answer_came_from() -> None:
    x, w = torch.randn(1, 1, 4000), torch.randn(1, 1, 1001)
    first = autoconv.select(x, w)
    assert first.source == "measured"
    again = autoconv.select(x, w)
    assert again.source == "memory" and again.strategy == first.strategy
    dispatcher.reset()  # a new process, in effect: the answer now comes from the database
    assert autoconv.select(x, w).source == "database"


def test_explain_shows_the_measurements_behind_select() -> None:
    x, w = torch.randn(1, 1, 2000), torch.randn(1, 1, 301)
    explanation = autoconv.explain(x, w)  # measured (mode tune), then read from the database
    choice = autoconv.select(x, w)
    assert (explanation.choice.strategy, explanation.choice.params) == (choice.strategy,
                                                                      choice.params)
    assert sum(explanation.is_chosen(o) for o in explanation.outcomes) == 1
    assert explanation.reference is not None
    assert explanation.speedup(explanation.reference) == 1.0
    text = explanation.format()
    assert "\nF.conv1d: " in text and "\ndecision: " in text
    by_signature = autoconv.explain(Signature.of(x, w), device="cpu")
    assert by_signature.outcomes == explanation.outcomes
    with pytest.raises(TypeError):
        autoconv.explain(x)


def test_select_takes_a_signature() -> None:
    from autoconv.storage.cost_cache import persistent_cost_model as default_cost_model
    from autoconv.strategies import all_strategies
    from autoconv.tuning.candidates import enumerate_candidates

    sig = Signature(1, 1, 1, 3000, 700, 1, 0, 0, 1, 1, "float32", "cpu", False)
    with autoconv.settings.override(mode="predict"):
        choice = autoconv.select(sig)
    # an empty database: too little data for the predictor, so the cost model's fastest
    # predicted candidate for the signature's length bucket, at its predicted time
    key = dispatcher.selector.key_signature(sig)
    predicted = [(default_cost_model.predict(key, c.strategy, dict(c.params),
                                             torch.device("cpu")), c)
                 for c in enumerate_candidates(all_strategies(), key)]
    best_s, best = min(((t, c) for t, c in predicted if t is not None), key=lambda tc: tc[0])
    assert choice.source == "cost_model"
    assert (choice.strategy, choice.params_dict, choice.median_s) == (
        best.name, dict(best.params), best_s)


def test_a_long_kernel_is_decided_against_f_conv1d_without_running_it_past_the_budget(
        ) -> None:
    choice = autoconv.select(torch.randn(1, 1, 48000), torch.randn(1, 1, 8191))
    assert choice.source == "measured" and choice.strategy != "direct"
    # F.conv1d as called is in every measured decision: timed when the probe put it within
    # the budget, else estimated from windows of it (never run in full past the budget)
    rows = {m.strategy: m for _, m in dispatcher.selector.store.db.measurements()}
    assert "direct" in rows
    direct = rows["direct"]
    assert (direct.note or "").startswith("estimated: ") or \
        direct.median_s <= autoconv.settings.budget_s



def test_mode_off_is_plain_f_conv1d_and_tunes_nothing() -> None:
    x, w = torch.randn(1, 2, 300), torch.randn(2, 2, 9)
    with autoconv.settings.override(mode="off"):
        torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
        assert autoconv.select(x, w).source == "off"


def test_works_under_no_grad_and_inference_mode() -> None:
    x, w = torch.randn(2, 2, 600), torch.randn(2, 2, 129)
    expected = F.conv1d(x, w)
    with torch.no_grad():
        torch.testing.assert_close(autoconv.conv1d(x, w), expected, rtol=1e-4, atol=1e-4)
    with torch.inference_mode():
        xi, wi = x.clone(), w.clone()
        torch.testing.assert_close(autoconv.conv1d(xi, wi), expected, rtol=1e-4, atol=1e-4)


def test_threads_share_one_tuning_run(monkeypatch: pytest.MonkeyPatch) -> None:
    x, w = torch.randn(1, 4, 700), torch.randn(4, 4, 31)
    selector = dispatcher.selector
    tunings: list[Signature] = []
    original = selector.tune

    def counting_tune(signature, device, candidates):
        tunings.append(signature)
        return original(signature, device, candidates)

    monkeypatch.setattr(selector, "tune", counting_tune)
    outputs = run_in_threads(lambda: autoconv.conv1d(x, w))
    assert len(outputs) == 4
    for output in outputs:
        torch.testing.assert_close(output, F.conv1d(x, w), rtol=1e-4, atol=1e-4)
    store = dispatcher.selector.store
    rows = list(store.db.measurements())
    signatures = {m.signature for _, m in rows}
    assert len(signatures) == 1
    # tuned once, not four times (the rows alone cannot tell: a second tuning run of the
    # same signature overwrites them in place)
    assert tunings == [selector.key_signature(Signature.of(x, w))]  # its length bucket


def test_changing_a_setting_drops_cached_choices() -> None:
    x, w = torch.randn(1, 1, 3000), torch.randn(1, 1, 900)
    autoconv.select(x, w)
    with autoconv.settings.override(mode="predict"):
        assert autoconv.select(x, w).source == "database"


@pytest.mark.parametrize("x_shape,w_shape", [((0, 4, 10), (5, 4, 3)), ((2, 0, 10), (5, 0, 3)),
                                             ((0, 10), (5, 0, 3))])
def test_degenerate_calls_are_f_conv1d_untuned_and_leave_the_database_alone(x_shape,
                                                                             w_shape) -> None:
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    expected = F.conv1d(x, w)
    out = autoconv.conv1d(x, w)
    assert (out.shape, out.dtype) == (expected.shape, expected.dtype)
    assert autoconv.select(x, w).source == "fallback"
    store = dispatcher.selector.store
    assert list(store.db.measurements()) == []
    autoconv.conv1d(torch.randn(1, 4, 50), torch.randn(5, 4, 3))  # storage still on
    assert {m.signature.length for _, m in store.db.measurements()} == {50}


def test_a_call_f_conv1d_refuses_raises_its_own_error_every_time() -> None:
    x, w = torch.randn(2, 4, 0), torch.randn(5, 4, 3)
    for _ in range(2):
        with pytest.raises(RuntimeError) as theirs:
            F.conv1d(x, w, padding=2)
        with pytest.raises(RuntimeError) as ours:
            autoconv.conv1d(x, w, padding=2)
        assert str(ours.value) == str(theirs.value)
