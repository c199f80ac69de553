"""Interleaved timing with a fake clock: order, deadline, failures, summaries."""

from __future__ import annotations

import math

import pytest
import torch

from autoconv.tuning.timing import measure_interleaved, summarize

CPU = torch.device("cpu")


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
        device=CPU, deadline=1.0, max_samples=4, clock=clock)
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
                                  deadline=1.0, max_samples=3, clock=clock)
    assert timings[0].median_s == math.inf and not timings[0].ok
    assert timings[0].failure == "RuntimeError: out of memory"
    assert timings[0].samples == 0  # called once, raised, never called again
    assert timings[1].samples == 3 and timings[1].ok and log == ["ok"] * 3


def test_summary_uses_median_and_interquartile_range() -> None:
    summary = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert summary.median_s == 3.0 and summary.samples == 5
    # quartiles 1.5 and 52 (statistics.quantiles' exclusive method): the outlier moves the
    # upper quartile only halfway, and the median not at all
    assert summary.spread_s == pytest.approx(50.5)
    assert summarize([1.0, 3.0, 2.0]).spread_s == 2.0  # under 4 samples: the range
    assert summarize([2.0]).spread_s == 0.0


def test_real_clock_measures_something_positive() -> None:
    x = torch.randn(1000)
    timings = measure_interleaved([lambda: x.sum()], device=CPU, deadline=float("inf"),
                                  max_samples=3)
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
