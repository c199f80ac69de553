"""Tuner logic with fake strategies, a fake timer and a fake store: no wall-clock assertions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from autoconv.settings import Settings
from autoconv.signature import Signature
from autoconv.strategies import Strategy, direct
from autoconv.tuning.candidates import DEFAULT_TOLERANCE, ConvInputs
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.selector import Selector
from autoconv.tuning.timing import Timing
from tests.concurrency import run_in_threads

CPU = torch.device("cpu")
SIG = Signature(2, 3, 4, 300, 5, 1, 2, 2, 1, 1, "float32", "cpu", False)


def correct(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, **params):
    return F.conv1d(input, weight, bias, stride, padding, dilation, groups)


def wrong(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, **params):
    return F.conv1d(input, weight, bias, stride, padding, dilation, groups) + 0.5


def exploding(*args, **params):
    raise RuntimeError("kaboom")


def blocks(signature: Signature) -> list[dict]:
    return [{"block": 64}, {"block": 128}]


def spying(ran: list[str]):
    """A factory of correct strategies that log their name to ``ran`` when called."""
    def spy(name: str) -> Strategy:
        def run(*args, **params):
            ran.append(name)
            return correct(*args, **params)
        return Strategy(name, run)
    return spy


STRATEGIES = {
    "direct": Strategy("direct", direct, reference=True),
    "fast": Strategy("fast", correct),
    "blocky": Strategy("blocky", correct, blocks),
    "wrong": Strategy("wrong", wrong),
    "exploding": Strategy("exploding", exploding),
}


class FakeTimer:
    """Returns preset medians (and spreads) by candidate label; records what it timed."""

    def __init__(self, times: dict[str, float], spreads: dict[str, float] | None = None) -> None:
        self.times = times
        self.spreads = spreads or {}
        self.timed: list[list[str]] = []

    def __call__(self, candidates, *, device, deadline, max_samples,
                 min_samples=1, **_) -> list[Timing]:
        labels = [c.candidate.label for c in candidates]
        self.timed.append(labels)
        return [Timing(self.times[label], self.spreads.get(label, 0.0), 5) for label in labels]


class FakeStore:
    def __init__(self) -> None:
        self.rows: dict[tuple[Signature, torch.device], list[Outcome]] = {}
        self.lookups = 0

    def candidates(self, signature: Signature, device: torch.device) -> list[SimpleNamespace]:
        self.lookups += 1
        return [SimpleNamespace(strategy=o.candidate.name, params=dict(o.candidate.params),
                                median_s=o.median_s, spread_s=o.spread_s, samples=o.samples,
                                error=o.error, note=o.note)
                for o in self.rows.get((signature, device), []) if o.ok]

    def record(self, signature, device, outcomes: Sequence[Outcome]) -> None:
        self.rows.setdefault((signature, device), []).extend(outcomes)


class FakeCostModel:
    def __init__(self, times: dict[str, float]) -> None:
        self.times = times

    def predict(self, signature, strategy, params, device):
        return self.times.get(strategy.name)


def make_selector(names: list[str], times: dict[str, float], *, store=None, cost=None,
                  clock=None, **settings_values) -> tuple[Selector, FakeTimer]:
    timer = FakeTimer(times)
    settings = Settings(bucket_lengths=False, **settings_values)
    selector = Selector(strategies=[STRATEGIES[n] for n in names], timer=timer,
                        store=store, cost_model=cost, settings=settings,
                        **({} if clock is None else {"clock": clock}))
    return selector, timer


def test_the_fastest_candidate_wins_and_params_are_kept() -> None:
    selector, timer = make_selector(
        ["direct", "fast", "blocky"],
        {"direct": 3.0, "fast": 2.0, "blocky(block=64)": 1.5, "blocky(block=128)": 1.0})
    choice = selector.choose(SIG, CPU)
    assert (choice.strategy, choice.params_dict, choice.source) == ("blocky", {"block": 128},
                                                                    "measured")
    assert sorted(timer.timed[0]) == sorted(
        ["direct", "fast", "blocky(block=64)", "blocky(block=128)"])


def test_second_call_is_served_from_memory_without_timing() -> None:
    selector, timer = make_selector(["direct", "fast"], {"direct": 2.0, "fast": 1.0})
    selector.choose(SIG, CPU)
    again = selector.choose(SIG, CPU)
    assert again.source == "memory" and again.origin == "measured" and again.strategy == "fast"
    assert len(timer.timed) == 1


def test_near_tie_goes_to_the_simpler_strategy() -> None:
    selector, _ = make_selector(["direct", "fast"], {"direct": 1.02, "fast": 1.0},
                                tie_margin=0.03)
    assert selector.choose(SIG, CPU).strategy == "direct"
    selector, _ = make_selector(["direct", "fast"], {"direct": 1.10, "fast": 1.0},
                                tie_margin=0.03)
    assert selector.choose(SIG, CPU).strategy == "fast"


@pytest.mark.parametrize("padded_first_s,winner", [(1.0, {}), (0.9, {"pre_pad": 1})])
def test_within_a_strategy_a_tie_goes_to_its_form_without_parameters(
        padded_first_s: float, winner: dict) -> None:
    two_forms = Strategy("direct", direct, lambda s: [{}, {"pre_pad": 1}], reference=True)
    timer = FakeTimer({"direct": 1.02, "direct(pre_pad=1)": padded_first_s})
    selector = Selector(strategies=[two_forms], timer=timer,
                        settings=Settings(bucket_lengths=False, tie_margin=0.03))
    assert selector.choose(SIG, CPU).params_dict == winner


def test_a_win_within_the_noise_goes_to_the_simpler_strategy() -> None:
    noisy = FakeTimer({"direct": 1.20, "fast": 1.0}, spreads={"direct": 0.3, "fast": 0.2})
    selector = Selector(strategies=[STRATEGIES["direct"], STRATEGIES["fast"]], timer=noisy,
                        settings=Settings(bucket_lengths=False, tie_margin=0.03))
    assert selector.choose(SIG, CPU).strategy == "direct"  # the IQRs overlap
    clear = FakeTimer({"direct": 1.20, "fast": 1.0}, spreads={"direct": 0.02, "fast": 0.02})
    selector = Selector(strategies=[STRATEGIES["direct"], STRATEGIES["fast"]], timer=clear,
                        settings=Settings(bucket_lengths=False, tie_margin=0.03))
    assert selector.choose(SIG, CPU).strategy == "fast"


def test_a_process_reading_the_database_applies_the_same_tie_rule(tmp_path) -> None:
    from autoconv.storage.store import TuningStore

    store = TuningStore(f"sqlite:///{tmp_path / 'tuning.sqlite3'}")
    noisy = FakeTimer({"direct": 1.20, "fast": 1.0}, spreads={"direct": 0.3, "fast": 0.2})
    names = [STRATEGIES["direct"], STRATEGIES["fast"]]
    config = Settings(bucket_lengths=False, tie_margin=0.03)
    measuring = Selector(strategies=names, timer=noisy, store=store, settings=config)
    assert measuring.choose(SIG, CPU).strategy == "direct"  # fast's win is within the noise
    never = FakeTimer({})  # any timing would raise KeyError
    reading = Selector(strategies=names, timer=never, store=store, settings=config)
    again = reading.choose(SIG, CPU)
    assert (again.strategy, again.source) == ("direct", "database") and never.timed == []
    store.close()


def test_wrong_results_are_disqualified_and_recorded() -> None:
    store = FakeStore()
    selector, timer = make_selector(["direct", "wrong"], {"direct": 2.0, "wrong": 0.1},
                                    store=store)
    assert selector.choose(SIG, CPU).strategy == "direct"
    assert timer.timed == [["direct"]]
    wrong_rows = [o for o in store.rows[(SIG, CPU)] if o.candidate.name == "wrong"]
    assert len(wrong_rows) == 1 and not wrong_rows[0].ok
    # every output is off by 0.5; the error is relative to the largest direct output of the
    # tuner's (seeded) inputs
    scale = ConvInputs.random(SIG, CPU).reference().abs().max().item()
    assert wrong_rows[0].error == pytest.approx(0.5 / scale)
    tolerance = DEFAULT_TOLERANCE["float32"]
    assert wrong_rows[0].note == (f"disqualified: error {wrong_rows[0].error:.3g} > "
                                  f"{tolerance:.3g}")


def test_a_failing_candidate_loses_without_aborting() -> None:
    store = FakeStore()
    selector, timer = make_selector(["direct", "exploding"], {"direct": 1.0}, store=store)
    assert selector.choose(SIG, CPU).strategy == "direct"
    assert timer.timed == [["direct"]]  # the failed candidate is not timed
    failed = [o for o in store.rows[(SIG, CPU)] if o.candidate.name == "exploding"]
    assert len(failed) == 1 and not failed[0].ok
    assert failed[0].note == "failed: RuntimeError: kaboom"


def test_cost_model_prunes_hopeless_candidates_before_they_run() -> None:
    ran: list[str] = []
    spy = spying(ran)
    timer = FakeTimer({"direct": 5.0, "fast": 1.0})
    selector = Selector(strategies=[spy("direct"), spy("fast")], timer=timer,
                        cost_model=FakeCostModel({"direct": 100.0, "fast": 1.0}),
                        settings=Settings(bucket_lengths=False, prune_factor=8.0))
    choice = selector.choose(SIG, CPU)
    assert choice.strategy == "fast"
    assert "direct" not in ran  # never run, not even as the correctness reference
    assert timer.timed == [["fast"]]


def test_the_reference_is_timed_even_when_the_cost_model_prices_it_far_slower() -> None:
    store = FakeStore()
    selector, timer = make_selector(
        ["direct", "fast"], {"direct": 100.0, "fast": 1.0}, store=store,
        cost=FakeCostModel({"direct": 100.0, "fast": 1.0}))
    # 100x the best is beyond prune_factor, and 50x the budget: but the cost model's word
    # alone never keeps F.conv1d out; its timed window here says it is quick, so it runs
    assert selector.choose(SIG, CPU).strategy == "fast"
    assert sorted(timer.timed[0]) == ["direct", "fast"]
    assert {o.candidate.name for o in store.rows[(SIG, CPU)]} == {"direct", "fast"}


def test_the_reference_is_estimated_not_run_when_its_windows_put_it_over_the_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"now": 0.0}
    window_call = ConvInputs.leading_as_called

    def slow_window(self, window):
        clock["now"] += 0.5  # each window of F.conv1d takes half a (fake) second
        return window_call(self, window)

    monkeypatch.setattr(ConvInputs, "leading_as_called", slow_window)
    store = FakeStore()
    selector, timer = make_selector(
        ["direct", "fast", "wrong"], {"fast": 1.0, "wrong": 0.5}, store=store,
        cost=FakeCostModel({"direct": 100.0, "fast": 0.01, "wrong": 0.01}),
        clock=lambda: clock["now"])
    assert selector.choose(SIG, CPU).strategy == "fast"
    assert timer.timed == [["fast"]]
    # direct was never run in full: its estimate (0.5 s for 66 of 300 outputs) stands for
    # it; wrong was checked against the leading outputs and disqualified
    rows = {o.candidate.name: o for o in store.rows[(SIG, CPU)]}
    assert set(rows) == {"direct", "fast", "wrong"} and not rows["wrong"].ok
    assert rows["direct"].note.startswith("estimated: ") and rows["direct"].samples == 1
    assert rows["direct"].median_s == pytest.approx(0.5 * 300 / 66)
    assert rows["wrong"].note.startswith("disqualified: error ")


def test_an_estimated_reference_still_beats_a_slower_candidate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"now": 0.0}
    window_call = ConvInputs.leading_as_called

    def slow_window(self, window):
        clock["now"] += 0.5
        return window_call(self, window)

    monkeypatch.setattr(ConvInputs, "leading_as_called", slow_window)
    selector, _ = make_selector(["direct", "fast"], {"fast": 9.0},
                                cost=FakeCostModel({"direct": 100.0, "fast": 0.01}),
                                clock=lambda: clock["now"])
    choice = selector.choose(SIG, CPU)  # fast, timed at 9 s, loses to F.conv1d's 2.3 s
    assert choice.strategy == "direct" and choice.median_s == pytest.approx(0.5 * 300 / 66)


def test_measurements_round_trip_through_the_store() -> None:
    store = FakeStore()
    first, _ = make_selector(["direct", "fast"], {"direct": 2.0, "fast": 1.0}, store=store)
    first.choose(SIG, CPU)
    assert {o.candidate.name for o in store.rows[(SIG, CPU)]} == {"direct", "fast"}
    second, timer = make_selector(["direct", "fast"], {"direct": 2.0, "fast": 1.0}, store=store)
    choice = second.choose(SIG, CPU)
    assert (choice.strategy, choice.source) == ("fast", "database")
    assert timer.timed == []


def test_persist_false_keeps_the_store_untouched() -> None:
    store = FakeStore()
    selector, _ = make_selector(["direct", "fast"], {"direct": 2.0, "fast": 1.0}, store=store,
                                persist=False)
    selector.choose(SIG, CPU)
    assert store.rows == {}


def test_mode_predict_never_times() -> None:
    selector, timer = make_selector(["direct", "fast"], {"direct": 2.0, "fast": 1.0},
                                    cost=FakeCostModel({"direct": 1.0, "fast": 3.0}),
                                    mode="predict")
    choice = selector.choose(SIG, CPU)
    assert (choice.strategy, choice.source) == ("direct", "cost_model")
    assert timer.timed == []


@pytest.mark.parametrize(("fast_s", "expected"), [(0.5, "direct"), (0.26, "direct"),
                                                   (0.25, "fast"), (0.01, "fast")])
def test_mode_predict_leaves_f_conv1d_only_for_a_large_predicted_gain(
        fast_s: float, expected: str) -> None:
    # prior_gain 4 (the default): a 2x or 3.8x predicted gain is not trusted, 4x is
    selector, timer = make_selector(["direct", "fast"], {},
                                    cost=FakeCostModel({"direct": 1.0, "fast": fast_s}),
                                    mode="predict")
    choice = selector.choose(SIG, CPU)
    assert (choice.strategy, choice.source) == (expected, "cost_model")
    assert choice.median_s == (1.0 if expected == "direct" else fast_s)  # its prediction
    assert timer.timed == []


def test_mode_predict_without_any_model_falls_back_to_direct() -> None:
    selector, timer = make_selector(["direct", "fast"], {}, mode="predict")
    choice = selector.choose(SIG, CPU)
    assert (choice.strategy, choice.params_dict, choice.source) == ("direct", {}, "fallback")
    assert timer.timed == []


def test_mode_off_is_always_direct() -> None:
    store = FakeStore()
    selector, timer = make_selector(["direct", "fast"], {"direct": 2.0, "fast": 1.0},
                                    store=store, mode="off")
    choice = selector.choose(SIG, CPU)
    assert choice.strategy == "direct" and choice.source == "off"
    assert timer.timed == [] and store.lookups == 0


def test_budget_skips_candidates_predicted_not_to_fit() -> None:
    ran: list[str] = []
    spy = spying(ran)
    now = [0.0]
    timer = FakeTimer({"direct": 1.0, "fast": 0.5})
    selector = Selector(strategies=[spy("direct"), spy("fast")], timer=timer,
                        clock=lambda: now[0],
                        cost_model=FakeCostModel({"direct": 7.0, "fast": 1.0}),
                        settings=Settings(bucket_lengths=False, budget_s=2.0, prune_factor=8))
    selector.choose(SIG, CPU)
    assert ran == ["fast"]  # direct is predicted at 7 s > 2 s budget: never warmed up


def test_budget_scales_predictions_by_the_cost_models_error_so_far() -> None:
    now = [0.0]
    ran: list[str] = []

    def strategy(name: str) -> Strategy:
        def run(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
            ran.append(name)
            now[0] += 0.7  # predicted 0.1 s, takes 0.7 s: the cost model is 7x optimistic
            return F.conv1d(input, weight, bias, stride, padding, dilation, groups)
        return Strategy(name, run)

    selector = Selector(strategies=[strategy("direct"), strategy("fast")],
                        timer=FakeTimer({"direct": 1.0, "fast": 0.5}), clock=lambda: now[0],
                        cost_model=FakeCostModel({"direct": 0.1, "fast": 0.1}),
                        settings=Settings(bucket_lengths=False, budget_s=1.0))
    assert selector.choose(SIG, CPU).strategy == "direct"
    assert ran == ["direct"]  # fast, expected at 0.7 s, no longer fits in the 0.2 s left
    # nothing else ran: no second warm-up, and no timing round (0.7 s more would end at
    # 1.4 s, past the 0.9 s deadline)
    assert now[0] == pytest.approx(0.7)


def test_length_bucketing_shares_one_decision() -> None:
    timer = FakeTimer({"direct": 2.0, "fast": 1.0})
    selector = Selector(strategies=[STRATEGIES["direct"], STRATEGIES["fast"]], timer=timer,
                        settings=Settings(bucket_lengths=True, bucket_ratio=1.25,
                                          bucket_min_length=256))
    lengths = range(1000, 1200)  # all in the bucket up to ceil(256 * 1.25**7) = 1221
    choices = [selector.choose(Signature(1, 1, 1, length, 3, 1, 0, 0, 1, 1, "float32", "cpu",
                                         False), CPU) for length in lengths]
    assert len(timer.timed) == 1
    assert {c.source for c in choices[1:]} == {"memory"}


def test_requires_grad_signatures_time_forward_and_backward() -> None:
    calls: list[bool] = []

    def grad_aware(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        calls.append(torch.is_grad_enabled() and input.requires_grad)
        return F.conv1d(input, weight, bias, stride, padding, dilation, groups)

    sig = Signature(1, 2, 2, 50, 3, 1, 0, 0, 1, 1, "float32", "cpu", True)
    selector = Selector(strategies=[Strategy("direct", grad_aware, reference=True)],
                        timer=FakeTimer({"direct": 1.0}), settings=Settings(bucket_lengths=False))
    selector.choose(sig, CPU)
    assert calls == [True]  # the one warm-up call (the fake timer calls nothing), with grad


def test_two_threads_tune_a_signature_once() -> None:
    timer = FakeTimer({"direct": 2.0, "fast": 1.0})
    selector = Selector(strategies=[STRATEGIES["direct"], STRATEGIES["fast"]], timer=timer,
                        settings=Settings(bucket_lengths=False))
    results = run_in_threads(lambda: selector.choose(SIG, CPU))
    assert len(timer.timed) == 1
    assert len(results) == 4  # a thread that raised would leave no result behind
    assert {r.strategy for r in results} == {"fast"}
    # one thread measured; the three that waited for it found its answer in memory
    assert sorted(r.source for r in results) == ["measured", "memory", "memory", "memory"]


def test_broken_store_warns_and_tuning_goes_on() -> None:
    # the guarded store is the one layer that turns a failing database into misses
    from autoconv.storage.guarded import GuardedStore

    class BrokenStore(FakeStore):
        where = "a broken disk"

        def candidates(self, signature, device):
            raise OSError("disk on fire")

        def device(self, device):
            return None

    selector, _ = make_selector(["direct", "fast"], {"direct": 2.0, "fast": 1.0},
                                store=GuardedStore(BrokenStore(), retry_s=30.0))
    with pytest.warns(RuntimeWarning, match="disk on fire"):
        assert selector.choose(SIG, CPU).strategy == "fast"


def test_no_timing_round_when_the_warm_ups_used_the_budget() -> None:
    now = [0.0]

    def slow(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        now[0] += 0.8  # each call 'takes' 0.8 s of the 1 s budget
        return F.conv1d(input, weight, bias, stride, padding, dilation, groups)

    timer = FakeTimer({"direct": 1.0, "slow_fast": 0.5})
    selector = Selector(strategies=[Strategy("direct", slow, reference=True),
                                    Strategy("slow_fast", slow)],
                        timer=timer, clock=lambda: now[0],
                        settings=Settings(bucket_lengths=False, budget_s=1.0))
    choice = selector.choose(SIG, CPU)
    assert timer.timed == []  # the warm-ups were the samples
    # warm-ups only: direct (0.8 s, 0.1 s of the 0.9 s deadline left), then slow_fast (the
    # cost model cannot judge it, and time is left), and nothing after them
    assert now[0] == pytest.approx(1.6)
    # both warm-ups took 0.8 s: a tie, which goes to the strategy registered first
    assert (choice.strategy, choice.median_s) == ("direct", pytest.approx(0.8))


def test_min_samples_times_candidates_even_when_the_warm_ups_used_the_budget() -> None:
    now = [0.0]

    def slow(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        now[0] += 0.8
        return F.conv1d(input, weight, bias, stride, padding, dilation, groups)

    asked = []

    class RecordingTimer(FakeTimer):
        def __call__(self, candidates, *, device, deadline, max_samples, min_samples=1, **_):
            asked.append(min_samples)
            return super().__call__(candidates, device=device, deadline=deadline,
                                    max_samples=max_samples, min_samples=min_samples)

    timer = RecordingTimer({"direct": 1.0, "slow_fast": 0.5})
    selector = Selector(strategies=[Strategy("direct", slow, reference=True),
                                    Strategy("slow_fast", slow)],
                        timer=timer, clock=lambda: now[0],
                        settings=Settings(bucket_lengths=False, budget_s=1.0, min_samples=3))
    assert selector.choose(SIG, CPU).strategy == "slow_fast"
    assert timer.timed == [["direct", "slow_fast"]] and asked == [3]


def test_reference_error_is_relative_to_the_largest_direct_output() -> None:
    from autoconv.tuning.candidates import Reference

    reference = Reference.of(torch.tensor([[[2.0, -4.0, 1.0]]]))
    assert reference.scale == 4.0
    assert reference.error(torch.tensor([[[2.0, -4.0, 1.0, 99.0]]])) == 0.0  # extra ignored
    assert reference.error(torch.tensor([[[2.0, -3.0, 1.0]]])) == pytest.approx(0.25)
    assert math.isnan(reference.error(torch.tensor([[[2.0, float("nan"), 1.0]]])))
    half = Reference.of(torch.tensor([[[60000.0, 1.0]]], dtype=torch.float16))
    assert half.error(torch.tensor([[[-60000.0, 1.0]]], dtype=torch.float16)) == 2.0
    assert Reference.of(torch.zeros(1, 1, 3)).error(torch.full((1, 1, 3), 0.5)) == 0.5


def test_a_signature_too_large_to_measure_is_answered_without_measuring() -> None:
    selector, timer = make_selector(["direct", "fast"], {"direct": 2.0, "fast": 1.0},
                                    cost=FakeCostModel({"direct": 1.0, "fast": 3.0}),
                                    max_tune_bytes=SIG.tensor_bytes - 1)
    choice = selector.choose(SIG, CPU)
    assert (choice.strategy, choice.source) == ("direct", "cost_model") and timer.timed == []
    assert selector.remembered() == {}  # not kept: a larger limit later measures it
    assert SIG.tensor_bytes == 4 * (2 * 3 * 300 + 4 * 3 * 5 + 2 * 4 * 300)


def test_candidates_warmed_up_before_f_conv1d_are_checked_too() -> None:
    # fast and wrong are predicted faster than direct, so they run first: the check must not
    # wait for direct's own output (it compares them with a window of F.conv1d's)
    store = FakeStore()
    selector, _ = make_selector(
        ["direct", "fast", "wrong"], {"direct": 2.0, "fast": 1.0, "wrong": 0.5}, store=store,
        cost=FakeCostModel({"direct": 1.5, "fast": 1.0, "wrong": 1.0}))
    assert selector.choose(SIG, CPU).strategy == "fast"
    rows = {o.candidate.name: o for o in store.rows[(SIG, CPU)]}
    assert not rows["wrong"].ok and rows["wrong"].note.startswith("disqualified: error ")
