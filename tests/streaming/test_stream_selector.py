"""The stream selector's logic with fake streaming strategies, a fake clock, timer and store:
no wall-clock assertions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from autoconv.settings import Settings
from autoconv.signature import Signature
from autoconv.strategies.streaming import (
    StatefulDirect,
    StreamStrategy,
    all_stream_strategies,
    get,
)
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.stream_selector import StreamSelector
from autoconv.tuning.timing import Timing

CPU = torch.device("cpu")
WEIGHT = torch.randn(2, 1, 40)


def stream_signature(kernel: int = 40, chunk: int = 8) -> Signature:
    return Signature.of_stream(1, torch.empty(2, 1, kernel), dilation=1, groups=2,
                               chunk_size=chunk)


class FakeStore:
    """Keeps outcomes by (signature, device); hands back the ok ones as rows."""

    def __init__(self) -> None:
        self.rows: dict[tuple[Signature, torch.device], list[Outcome]] = {}

    def candidates(self, signature: Signature, device: torch.device) -> list[SimpleNamespace]:
        return [SimpleNamespace(strategy=o.candidate.name, params=dict(o.candidate.params),
                                median_s=o.median_s, spread_s=o.spread_s, samples=o.samples,
                                error=o.error)
                for o in self.rows.get((signature, device), []) if o.ok]

    def record(self, signature, device, outcomes) -> None:
        self.rows.setdefault((signature, device), []).extend(outcomes)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeEngine:
    """Stateful direct that advances a fake clock per chunk, and may be off by ``offset``."""

    def __init__(self, clock: FakeClock, seconds: float, offset: float, *args, **kwargs):
        self.inner = StatefulDirect(*args, **kwargs)
        self.clock, self.seconds, self.offset = clock, seconds, offset

    def step(self, chunk, out=None):
        self.clock.now += self.seconds
        result = self.inner.step(chunk, out)
        return result.add_(self.offset) if self.offset else result

    def reset(self) -> None:
        self.inner.reset()


def fake(name: str, clock: FakeClock, seconds: float, *, offset: float = 0.0,
         grid=None, period: int = 1, reference: bool = False, flops: float = 1.0,
         explode: bool = False) -> StreamStrategy:
    def build(weight, bias, **kwargs):
        if explode:
            raise RuntimeError("kaboom")
        kwargs = {k: v for k, v in kwargs.items() if k != "size"}
        return FakeEngine(clock, seconds, offset, weight, bias, **kwargs)

    def check(signature, params):
        if set(params) - {"size"}:
            raise ValueError("unknown parameter")

    return StreamStrategy(name, build, lambda s, p: flops,
                          param_grid=grid or (lambda s: [{}]), check=check,
                          period=lambda s, p: period, reference=reference)


class FakeTimer:
    """Preset medians of one timed call (a cycle) by candidate label."""

    def __init__(self, times: dict[str, float]) -> None:
        self.times = times
        self.timed: list[list[str]] = []

    def __call__(self, calls, *, device, deadline, max_samples, min_samples=1, **kwargs):
        labels = [c.candidate.label for c in calls]
        self.timed.append(labels)
        return [Timing(self.times[label], 0.0, 5) for label in labels]


def make(strategies, times, *, store=None, clock=None, **settings):
    timer = FakeTimer(times)
    selector = StreamSelector(strategies=strategies, timer=timer, clock=clock or FakeClock(),
                              store=store, settings=Settings(**settings))
    return selector, timer


def test_the_fastest_chunk_wins_and_every_outcome_is_stored() -> None:
    clock, store = FakeClock(), FakeStore()
    sized = fake("sized", clock, 1e-4, grid=lambda s: [{"size": 1}, {"size": 4}], period=4)
    strategies = [fake("plain", clock, 1e-3, reference=True), sized]
    selector, timer = make(strategies, {"plain": 4e-3, "sized(size=1)": 2e-3,
                                        "sized(size=4)": 1e-3}, store=store, clock=clock)
    choice = selector.choose(stream_signature(), CPU)
    assert (choice.strategy, choice.params_dict, choice.source) == ("sized", {"size": 4},
                                                                    "measured")
    assert choice.median_s == pytest.approx(1e-3 / 4)  # a cycle of 4 chunks, per chunk
    assert sorted(timer.timed[0]) == ["plain", "sized(size=1)", "sized(size=4)"]
    [(key, outcomes)] = store.rows.items()
    assert key == (stream_signature(), CPU)
    assert sorted(o.candidate.label for o in outcomes) == ["plain", "sized(size=1)",
                                                           "sized(size=4)"]
    assert all(o.ok and o.error is not None and o.error < 1e-6 for o in outcomes)
    again, other = make(strategies, {}, store=store, clock=clock)
    assert again.choose(stream_signature(), CPU).source == "database"
    assert other.timed == []
    assert selector.choose(stream_signature(), CPU).source == "memory"


def test_wrong_and_failing_engines_are_kept_out() -> None:
    clock, store = FakeClock(), FakeStore()
    strategies = [fake("plain", clock, 1e-3, reference=True),
                  fake("wrong", clock, 1e-5, offset=0.5),
                  fake("broken", clock, 1e-5, explode=True)]
    selector, timer = make(strategies, {"plain": 1e-3}, store=store, clock=clock)
    assert selector.choose(stream_signature(), CPU).strategy == "plain"
    notes = {o.candidate.name: o.note for o in store.rows[(stream_signature(), CPU)]}
    assert notes["wrong"].startswith("disqualified") and "kaboom" in notes["broken"]
    assert timer.timed == [["plain"]]


def test_a_first_chunk_clearly_slower_than_the_best_is_not_streamed_further() -> None:
    clock = FakeClock()
    strategies = [fake("plain", clock, 1.0, reference=True, flops=100.0),
                  fake("quick", clock, 1e-3, flops=1.0)]
    selector, timer = make(strategies, {"quick": 1e-3}, clock=clock, budget_s=100.0)
    assert selector.choose(stream_signature(), CPU).strategy == "quick"
    assert timer.timed == [["quick"]]  # the fewest operations warmed up first


def test_a_tie_goes_to_the_reference() -> None:
    clock = FakeClock()
    strategies = [fake("plain", clock, 1e-3, reference=True), fake("other", clock, 1e-3)]
    selector, _ = make(strategies, {"plain": 1.02e-3, "other": 1e-3}, clock=clock)
    assert selector.choose(stream_signature(), CPU).strategy == "plain"


def test_mode_off_and_predict_do_not_measure() -> None:
    selector, timer = make(all_stream_strategies(), {}, mode="off")
    assert selector.choose(stream_signature(), CPU).source == "off"
    selector, timer = make(all_stream_strategies(), {}, mode="predict")
    long = selector.choose(stream_signature(kernel=48_000, chunk=256), CPU)
    short = selector.choose(stream_signature(kernel=3, chunk=256), CPU)
    assert (long.strategy, long.source) == ("partitioned", "cost_model")
    assert (short.strategy, short.source) == ("stateful_direct", "cost_model")
    assert timer.timed == []


def test_stored_rows_are_checked_by_their_strategy() -> None:
    signature = stream_signature()
    bad = SimpleNamespace(strategy="partitioned", params={"partition": 12}, median_s=1e-9,
                          spread_s=0.0, samples=5, error=0.0)
    store = FakeStore()
    store.candidates = lambda signature, device: [bad]
    times = {"stateful_direct": 1e-3, "stateful_direct(time_major=1)": 2e-3,
             "partitioned(partition=8)": 5e-4,
             "partitioned(partition=16)": 6e-4, "partitioned(partition=32)": 7e-4}
    selector, timer = make([get("stateful_direct"), get("partitioned")], times, store=store)
    with pytest.warns(RuntimeWarning, match="not a multiple of the chunk size"):
        choice = selector.choose(signature, CPU)
    assert (choice.source, choice.params_dict) == ("measured", {"partition": 8})
    assert sorted(timer.timed[0]) == sorted(times)


def test_stateful_direct_offers_both_layouts_and_checks_stored_ones() -> None:
    signature, direct = stream_signature(), get("stateful_direct")
    assert direct.param_grid(signature) == [{}, {"time_major": 1}]
    assert direct.kind({}) != direct.kind({"time_major": 1})
    direct.validate(signature, {"time_major": 1})
    with pytest.raises(ValueError, match="time_major"):
        direct.validate(signature, {"time_major": 2})
    with pytest.raises(TypeError):
        direct.validate(signature, {"time_major": True})
    with pytest.raises(ValueError, match="no parameter 'partition'"):
        direct.validate(signature, {"partition": 8})


def test_only_stream_signatures_are_chosen() -> None:
    selector, _ = make(all_stream_strategies(), {})
    with pytest.raises(ValueError, match="not a stream's signature"):
        selector.choose(Signature(1, 2, 2, 8, 3, 1, 0, 0, 1, 1, "float32", "cpu"), CPU)


def test_a_stream_tuned_on_a_busy_machine_is_timed_at_one_thread_on_its_cpu_clock() -> None:
    import time

    from autoconv.tuning.contention import MachineLoad
    from tuning_db.records import CONTENDED_NOTE

    clock, store = FakeClock(), FakeStore()
    seen = []

    def timer(calls, *, device, deadline, max_samples, min_samples=1, thread_clock=None,
              **_):
        seen.append((torch.get_num_threads(), thread_clock))
        return [Timing(1e-3 if c.candidate.name == "plain" else 1e-4, 0.0, 5) for c in calls]

    strategies = [fake("plain", clock, 1e-3, reference=True), fake("quick", clock, 1e-4)]
    torch.set_num_threads(2)  # the module's fixture runs streams at one thread
    selector = StreamSelector(strategies=strategies, timer=timer, clock=clock, store=store,
                              load=MachineLoad(read_runnable=lambda: 2, cores=2),
                              settings=Settings())
    choice = selector.choose(stream_signature(), CPU)
    assert torch.get_num_threads() == 2  # restored
    assert seen == [(1, time.thread_time)]
    assert choice.strategy == "quick"  # 10x: beyond the contended margin
    rows = store.rows[(stream_signature(), CPU)]
    assert all(row.note.startswith(f"{CONTENDED_NOTE} timed at 1 torch thread of 2")
               for row in rows)
    assert selector.provisional_reason(rows) is not None


class BlockEngine(FakeEngine):
    """An engine whose work falls on the last chunk of each period of ``period`` chunks (a
    stream with a latency): the chunks before it cost nothing."""

    def __init__(self, clock, seconds, period, *args, **kwargs):
        super().__init__(clock, 0.0, 0.0, *args, **kwargs)
        self.block_seconds, self.period, self.steps = seconds, period, 0

    def step(self, chunk, out=None):
        self.steps += 1
        if self.steps % self.period == 0:
            self.clock.now += self.block_seconds
        return super().step(chunk, out)


def test_a_candidate_whose_work_falls_on_its_periods_last_chunk_is_probed_a_period_long(
        ) -> None:
    """Probing a first chunk alone would see nothing of a block's work, and stream the
    whole cycle: a 480k-tap stateful direct delayed by 256 samples did 258 convolutions of
    0.2 s each (53 s against a 2 s budget). The probe is the candidate's own period."""
    clock = FakeClock()
    cheap = fake("cheap", clock, 1e-4, period=64, flops=1.0)

    def build(weight, bias, **kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k != "size"}
        return BlockEngine(clock, 0.2, 4, weight, bias, **kwargs)

    blocky = StreamStrategy("blocky", build, lambda s, p: 2.0, period=lambda s, p: 4)
    selector, timer = make([cheap, blocky], {"cheap": 1e-3, "blocky": 1e-3}, clock=clock)
    choice = selector.choose(stream_signature(), CPU)
    assert choice.strategy == "cheap"
    assert clock.now < 2.0  # 64 chunks of cheap, then one period of blocky: 0.2 s
    assert timer.timed == [["cheap"]]  # blocky never finished its cycle


def test_a_probe_gives_up_when_the_budget_runs_out_within_its_period() -> None:
    clock = FakeClock()
    cheap = fake("cheap", clock, 1e-4, period=64, flops=1.0)
    slow = fake("slow", clock, 0.3, period=64, flops=2.0)  # 64 chunks of 0.3 s a period
    store = FakeStore()
    selector, _ = make([cheap, slow], {"cheap": 1e-3, "slow": 1.0}, clock=clock, store=store)
    assert selector.choose(stream_signature(), CPU).strategy == "cheap"
    assert clock.now < 2.0 + 0.3 + 1e-6  # overran by one chunk at most
    assert [o.candidate.name for o in store.rows[(stream_signature(), CPU)]] == ["cheap"]
