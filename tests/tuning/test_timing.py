"""Interleaved timing with a fake clock: order, deadline, failures, summaries."""

from __future__ import annotations

import functools
import math
import types

import pytest
import torch

from autoconv.tuning import timing
from autoconv.tuning.contention import QuietMachine
from autoconv.tuning.timing import SEPARATED_SAMPLES, TIE_SAMPLES, summarize, warming

CPU = torch.device("cpu")
#: The timer on a machine that never reports other work (its tests do not depend on the
#: machine's load; tests/tuning/test_contention.py scripts the load).
measure_interleaved = functools.partial(timing.measure_interleaved, load=QuietMachine())


class FakeClock:
    """A clock that only moves when a fake candidate 'runs'."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def candidate(self, seconds: float, log: list[str], name: str):
        def run() -> None:
            log.append(name)
            self.now += seconds
        return run


def test_candidates_are_interleaved_and_summarised() -> None:
    clock, log = FakeClock(), []
    timings = measure_interleaved(
        [clock.candidate(0.001, log, "a"), clock.candidate(0.003, log, "b")],
        device=CPU, deadline=1.0, max_samples=4, clock=clock, drop_factor=None)
    rounds = [log[i:i + 2] for i in range(0, len(log), 2)]
    assert all(sorted(r) == ["a", "b"] for r in rounds) and len(rounds) == 4
    assert [t.samples for t in timings] == [4, 4]
    assert math.isclose(timings[0].median_s, 0.001) and math.isclose(timings[1].median_s, 0.003)
    assert all(t.ok for t in timings)


def test_deadline_stops_new_rounds_but_every_candidate_gets_one_sample() -> None:
    clock, log = FakeClock(), []
    timings = measure_interleaved(
        [clock.candidate(0.4, log, "a"), clock.candidate(0.4, log, "b")],
        device=CPU, deadline=1.0, max_samples=10, clock=clock)
    assert [t.samples for t in timings] == [1, 1]
    # one round of 0.8 s; a second would end at 1.6 s, past the deadline, so it never starts
    assert sorted(log) == ["a", "b"] and clock.now == pytest.approx(0.8)


def test_min_samples_are_taken_past_the_deadline_and_no_more() -> None:
    clock, log = FakeClock(), []
    timings = measure_interleaved(
        [clock.candidate(0.4, log, "a"), clock.candidate(0.4, log, "b")],
        device=CPU, deadline=1.0, max_samples=10, min_samples=3, clock=clock)
    assert [t.samples for t in timings] == [3, 3]
    capped = measure_interleaved([clock.candidate(0.4, log, "c")], device=CPU, deadline=0.0,
                                 max_samples=2, min_samples=5, clock=clock)
    assert capped[0].samples == 2


def test_a_failing_candidate_gets_infinite_time_and_the_others_go_on() -> None:
    clock, log = FakeClock(), []

    def broken() -> None:
        raise RuntimeError("out of memory")

    timings = measure_interleaved([broken, clock.candidate(0.01, log, "ok")], device=CPU,
                                  deadline=1.0, max_samples=3, clock=clock, drop_factor=None)
    assert timings[0].median_s == math.inf and not timings[0].ok
    assert timings[0].failure == "RuntimeError: out of memory"
    assert timings[0].samples == 0  # called once, raised, never called again
    assert timings[1].samples == 3 and timings[1].ok and log == ["ok"] * 3


def test_summary_uses_median_and_interquartile_range() -> None:
    summary = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert summary.median_s == 3.0 and summary.samples == 5
    # quartiles 1.5 and 52 (statistics.quantiles' exclusive method): the outlier moves the
    # upper quartile only halfway, and the median not at all; read as median +- spread / 2,
    # that range would reach down to -22, so it is cut to twice the median's distance
    # from the fastest sample
    assert summary.spread_s == pytest.approx(4.0)
    assert summarize([1.0, 2.0, 3.0, 4.0, 5.0]).spread_s == pytest.approx(3.0)  # the IQR
    assert summarize([14.6, 3.55, 2.96]).spread_s == pytest.approx(2 * (3.55 - 2.96))
    assert summarize([1.0, 3.0, 2.0]).spread_s == 2.0  # under 4 samples: the range
    assert summarize([2.0]).spread_s == 0.0


def test_real_clock_measures_something_positive() -> None:
    x = torch.randn(1000)
    timings = measure_interleaved([lambda: x.sum()], device=CPU, deadline=float("inf"),
                                  max_samples=3, drop_factor=None)
    assert timings[0].samples == 3 and timings[0].median_s > 0


def test_round_orders_are_shuffled_permutations_and_repeatable() -> None:
    from itertools import islice

    from autoconv.tuning.timing import round_orders

    orders = list(islice(round_orders(4), 40))
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)
    assert len({tuple(order) for order in orders}) > 10  # not a rotation's 4
    predecessors_of_0 = {order[order.index(0) - 1] for order in orders if order[0] != 0}
    assert predecessors_of_0 == {1, 2, 3}
    assert orders == list(islice(round_orders(4), 40))


def test_a_clearly_slower_candidate_leaves_the_race_and_near_ties_race_on() -> None:
    clock, log = FakeClock(), []

    def noisy(times: list[float]):
        calls = iter(range(10**6))

        def run() -> None:
            clock.now += times[next(calls) % len(times)]
        return run

    timings = measure_interleaved(
        [noisy([0.0100, 0.0112]), noisy([0.0111, 0.0101]), clock.candidate(0.030, log, "slow")],
        device=CPU, deadline=1.0, max_samples=8, clock=clock)
    # slow is dropped after its second sample; the two that overlap race on until the
    # medians of their later halves are within 3% (at 7 samples, an even four; at 6 they
    # were 11% apart): a tie, which more samples would not break (their summaries leave the
    # warming samples out)
    assert [t.samples for t in timings] == [7 - warming(7)] * 2 + [2]
    assert all(t.ok for t in timings) and math.isclose(timings[2].median_s, 0.030)


def test_candidates_whose_quartiles_separate_leave_the_race() -> None:
    clock, log = FakeClock(), []
    timings = measure_interleaved(  # 5% apart, no noise: separate after SEPARATED_SAMPLES
        [clock.candidate(0.0100, log, "a"), clock.candidate(0.0105, log, "b")],
        device=CPU, deadline=10.0, max_samples=25, clock=clock)
    # the summaries leave the warming samples out
    assert [t.samples for t in timings] == [SEPARATED_SAMPLES - warming(SEPARATED_SAMPLES)] * 2


def test_the_race_stops_when_one_candidate_is_left() -> None:
    clock, log = FakeClock(), []
    timings = measure_interleaved(
        [clock.candidate(0.010, log, "fast"), clock.candidate(0.040, log, "slow")],
        device=CPU, deadline=10.0, max_samples=25, min_samples=3, clock=clock)
    # the loser is dropped after two samples; the winner gets its min_samples (and the
    # SETTLED_SAMPLES that keep the decision from being provisional: 3 as well)
    assert [t.samples for t in timings] == [3, 2]
    assert clock.now == pytest.approx(3 * 0.010 + 2 * 0.040)
    first_call = measure_interleaved(
        [clock.candidate(0.010, log, "fast"), clock.candidate(0.040, log, "slow")],
        device=CPU, deadline=clock.now + 10.0, max_samples=25, min_samples=1, clock=clock)
    assert [t.samples for t in first_call] == [3, 2]


def test_a_stall_never_drops_a_fast_candidate() -> None:
    clock, calls = FakeClock(), {"a": 0, "b": 0}

    def stalling(name: str, seconds: float, stalls: set[int]):
        def run() -> None:
            calls[name] += 1
            clock.now += seconds * (50 if calls[name] in stalls else 1)
        return run

    # b is as fast as a, but its first call stalls 50x and so does a's second: after two
    # rounds b's fastest sample is a's median, never 1.5x it, so b stays in the race
    timings = measure_interleaved(
        [stalling("a", 0.01, {2}), stalling("b", 0.01, {1})],
        device=CPU, deadline=100.0, max_samples=25, clock=clock)
    # ended as a tie, after TIE_SAMPLES samples or more (summarised past the warming ones)
    assert timings[0].samples == timings[1].samples >= TIE_SAMPLES - warming(TIE_SAMPLES)
    assert timings[1].median_s == pytest.approx(0.01)


def test_the_deadline_is_checked_between_samples_under_contention() -> None:
    clock, log = FakeClock(), []
    slow_after = {"count": 0}

    def contended(name: str):
        def run() -> None:
            slow_after["count"] += 1
            log.append(name)
            clock.now += 0.05 if slow_after["count"] <= 3 else 2.0  # the machine gets busy
        return run

    timings = measure_interleaved([contended("a"), contended("b"), contended("c")],
                                  device=CPU, deadline=1.0, max_samples=10, clock=clock)
    # round one (0.15 s) fits; in round two the first call takes 2 s and the deadline has
    # passed, so the other two are not timed again
    assert sorted(t.samples for t in timings) == [1, 1, 2] and len(log) == 4


def ramping(clock: FakeClock, steady_s: float, first: list[float]):
    """A fake candidate whose first calls take ``first``, then ``steady_s`` each."""
    times = iter(first)

    def run() -> None:
        clock.now += next(times, steady_s)
    return run


def test_warming_samples_are_left_out_of_the_summary() -> None:
    clock = FakeClock()
    (timing,) = measure_interleaved([ramping(clock, 0.002, [0.004, 0.003])], device=CPU,
                                    deadline=1.0, max_samples=6, clock=clock,
                                    drop_factor=None)
    # six samples; the first half, with the two slow ones, no longer widens the spread
    assert timing.samples == 6 - warming(6) == 3
    assert timing.median_s == pytest.approx(0.002) and timing.spread_s == pytest.approx(0.0)
    (few,) = measure_interleaved([ramping(clock, 0.002, [0.004, 0.003])], device=CPU,
                                 deadline=1.0, max_samples=4, clock=clock, drop_factor=None)
    assert few.samples == 4  # too few later ones: every sample makes the summary


class _Labelled:
    """A fake call carrying a candidate, as the tuner's calls do."""

    def __init__(self, run, reference: bool = True) -> None:
        self._run = run
        self.candidate = types.SimpleNamespace(is_plain_conv1d=reference)

    def __call__(self) -> None:
        self._run()


def test_two_spoilt_samples_do_not_drop_f_conv1d() -> None:
    clock = FakeClock()
    # F.conv1d's first two samples come after calls that left the machine slow (3x); in
    # steady rounds it is the faster: it stays in the race and wins it
    timings = measure_interleaved(
        [ramping(clock, 0.0100, []), _Labelled(ramping(clock, 0.0080, [0.030, 0.024]))],
        device=CPU, deadline=10.0, max_samples=25, clock=clock)
    assert timings[1].median_s == pytest.approx(0.008)
    assert timings[0].median_s == pytest.approx(0.010) and timings[0].samples >= 3
    # another candidate so spoilt leaves the race: a gain missed, never a loss
    lost = measure_interleaved(
        [ramping(clock, 0.0100, []), _Labelled(ramping(clock, 0.0080, [0.030, 0.024]), False)],
        device=CPU, deadline=clock.now + 10.0, max_samples=25, clock=clock)
    assert lost[1].samples == 2


def test_the_first_half_of_the_samples_is_warming_once_three_remain() -> None:
    assert [warming(n) for n in (1, 2, 3, 4, 5, 6, 7, 8, 25)] == [0, 0, 0, 0, 2, 3, 3, 4, 12]
    assert timing.settled([9.0, 4.0, 8.0, 2.0, 2.1, 2.0]) == [2.0, 2.1, 2.0]


def test_the_narrower_drop_waits_for_f_conv1d_s_samples_past_the_warming_ones() -> None:
    clock, log = FakeClock(), []
    timings = measure_interleaved(
        [clock.candidate(0.010, log, "fast"), _Labelled(clock.candidate(0.013, log, "plain"))],
        device=CPU, deadline=10.0, max_samples=25, clock=clock)
    # 1.3x: under DROP_FACTOR, so only SETTLED_FACTOR drops it, after 2 + 3 samples (not 3,
    # which could all have come after another candidate's memory-hungry call)
    assert log.count("plain") == 5 and log.count("fast") == 5
    assert [t.samples for t in timings] == [5 - warming(5)] * 2
    others = measure_interleaved(
        [clock.candidate(0.010, log, "fast"), clock.candidate(0.013, log, "other")],
        device=CPU, deadline=clock.now + 10.0, max_samples=25, clock=clock)
    assert log.count("other") == 3 and others[1].samples == 3  # any other: after three
