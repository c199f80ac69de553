"""Timing on a busy machine, with a scripted load and a fake clock: disturbed samples are
kept apart, a contended timing is judged on its lower samples and stored as provisional, and
a contended near-win does not displace F.conv1d."""

from __future__ import annotations

import itertools
import math
import time

import pytest
import torch

from autoconv.settings import Settings
from autoconv.strategies import Strategy, direct
from autoconv.tuning.candidates import Candidate
from autoconv.tuning.contention import MachineLoad, own_running_threads, runnable_threads
from autoconv.tuning.outcome import Outcome, provisional_reason, tie_winner
from autoconv.tuning.selector import Selector
from autoconv.tuning.timing import CLEAN_SAMPLES, Timing, measure_interleaved, warming
from tests.tuning.test_selector import SIG, FakeStore, correct
from tuning_db.records import CONTENDED_NOTE

CPU = torch.device("cpu")
ORDER = ["direct", "fast"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def candidate(self, seconds):
        """A candidate taking ``seconds`` (a number, or an iterator of them) per call."""
        times = iter(seconds) if not isinstance(seconds, float) else itertools.repeat(seconds)

        def run() -> None:
            self.now += next(times)
        return run


def scripted(readings):
    """A load whose readings of other processes' runnable threads follow ``readings`` (then
    repeat the last), on a machine with as many cores as torch has threads."""
    values = list(readings)
    state = {"i": 0}

    def read() -> int:
        value = values[min(state["i"], len(values) - 1)]
        state["i"] += 1
        return value
    return MachineLoad(read_runnable=read, cores=torch.get_num_threads())


def test_the_load_counts_threads_beyond_the_cores() -> None:
    assert scripted([0]).busy() is False
    load = scripted([2])
    assert load.busy() is True and load.peak_excess == 2
    assert MachineLoad(read_runnable=lambda: None, cores=2).busy() is False
    # torch's threads count: one other thread on a machine whose cores torch fills is busy
    assert MachineLoad(read_runnable=lambda: 1, cores=torch.get_num_threads()).busy()
    assert not MachineLoad(read_runnable=lambda: 1, cores=torch.get_num_threads() + 1).busy()
    assert runnable_threads() is None or runnable_threads() >= 1
    own = own_running_threads()
    assert own is None or own >= 1  # this thread, reading


def test_proc_stat_is_read_and_a_missing_file_falls_back(tmp_path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu 1 2 3\nprocs_running 7\nprocs_blocked 0\n")
    assert runnable_threads(str(stat)) == 7
    fallback = runnable_threads(str(tmp_path / "missing"))
    assert fallback is None or fallback >= 0


def test_a_busy_machine_throughout_gives_a_contended_timing_on_all_its_samples() -> None:
    clock = FakeClock()
    slowed = [0.004, 0.005, 0.006, 0.005, 0.004, 0.030]  # every sample slowed, one stalled
    timings = measure_interleaved([clock.candidate(itertools.cycle(slowed))], device=CPU,
                                  deadline=1.0, max_samples=8, clock=clock, drop_factor=None,
                                  load=scripted([2]))
    (timing,) = timings
    # disturbed samples earn extra rounds (up to 3 per sample asked for), all disturbed here
    assert timing.contended and timing.disturbed == timing.samples == 24
    assert timing.median_s == pytest.approx(0.005)  # their median: steadier than a quantile
    assert timing.peak_excess == 2


class SharedCore:
    """A wall clock and a thread's CPU clock on a core shared with other work: a call
    advances both by its own CPU seconds, and the wall clock also by the time it waited
    for the core (each call's wait taken in turn from ``waits``)."""

    def __init__(self, waits) -> None:
        self.wall, self.cpu = FakeClock(), FakeClock()
        self.waits = itertools.cycle(waits)

    def candidate(self, cpu_s: float):
        def run() -> None:
            self.cpu.now += cpu_s
            self.wall.now += cpu_s + next(self.waits)
        return run


def test_on_the_threads_cpu_clock_waiting_for_a_core_is_not_counted() -> None:
    """Beside other work the waits fall unevenly: on the wall clock the faster candidate
    looks slower, and every sample is disturbed; on the thread's CPU clock each is timed as
    on a quiet machine, and the racing rules apply again."""
    def timed(thread_clock: bool) -> list[Timing]:
        core = SharedCore([0.02, 0.0, 0.0])  # a wait every third call: 1st, 4th, ... (fast's)
        return measure_interleaved(
            [core.candidate(0.010), core.candidate(0.012)], device=CPU, deadline=5.0,
            max_samples=8, clock=core.wall, load=scripted([2]), drop_factor=None,
            **({"thread_clock": core.cpu} if thread_clock else {}))

    on_wall, on_cpu = timed(False), timed(True)
    assert all(t.contended for t in on_wall)
    assert not any(t.contended or t.disturbed for t in on_cpu)
    assert [t.median_s for t in on_cpu] == pytest.approx([0.010, 0.012])
    # 8 clean samples (max_samples ends it), summarised without the warming ones
    assert [t.samples for t in on_cpu] == [8 - warming(8)] * 2 == [4, 4]
    # the deadline is kept on the wall clock: a deadline already past allows one round
    core = SharedCore([1.0])
    (late,) = measure_interleaved([core.candidate(0.01)], device=CPU, deadline=0.5,
                                  max_samples=8, clock=core.wall, thread_clock=core.cpu)
    assert late.samples == 1 and late.median_s == pytest.approx(0.01)


def test_disturbed_samples_are_left_out_once_enough_clean_ones_remain() -> None:
    clock = FakeClock()
    # busy for the first three samples (one reading before and one after each), quiet after
    load = scripted([2, 2, 2, 2, 2, 2, 0])
    times = iter([0.05, 0.05, 0.05] + [0.002] * 20)
    timings = measure_interleaved([clock.candidate(times)], device=CPU, deadline=10.0,
                                  max_samples=5, clock=clock, drop_factor=None, load=load)
    (timing,) = timings
    assert not timing.contended and timing.disturbed == 3
    # the 5 clean ones, less the 2 warming ones: still CLEAN_SAMPLES
    assert timing.samples == 5 - warming(5) == CLEAN_SAMPLES
    assert timing.median_s == pytest.approx(0.002)


def test_a_blip_at_one_end_of_a_sample_does_not_disturb_it() -> None:
    clock = FakeClock()
    load = scripted([2, 0, 2, 0, 2, 0, 2, 0])  # never busy at both ends of a sample
    (timing,) = measure_interleaved([clock.candidate(0.001)], device=CPU, deadline=1.0,
                                    max_samples=4, clock=clock, drop_factor=None, load=load)
    assert timing.disturbed == 0 and timing.samples == 4


def outcome(name: str, median: float, samples: int = 10, note: str | None = None) -> Outcome:
    strategy = Strategy(name, direct if name == "direct" else correct,
                        reference=name == "direct")
    return Outcome(Candidate(strategy, ()), median, 0.0, samples, note=note)


def test_a_contended_winner_makes_the_decision_provisional_and_says_why() -> None:
    busy = f"{CONTENDED_NOTE} 6 of 6 samples disturbed"
    outcomes = [outcome("direct", 2.5), outcome("fast", 1.0, note=busy)]
    assert tie_winner(outcomes, ORDER, 0.03).candidate.name == "fast"
    reason = provisional_reason(outcomes, ORDER, 0.03)
    assert reason is not None and "busy machine" in reason and "6 of 6" in reason
    # a contended F.conv1d far slower than the winner leaves the decision final
    far = [outcome("direct", 10.0, note=busy), outcome("fast", 1.0)]
    assert provisional_reason(far, ORDER, 0.03) is None
    # ... a close one does not
    close = [outcome("direct", 1.5), outcome("fast", 1.0, samples=10)]
    assert provisional_reason(close, ORDER, 0.03) is None
    assert tie_winner([outcome("direct", 1.4, note=busy), outcome("fast", 1.0)], ORDER,
                      0.03).candidate.name == "direct"  # a contended F.conv1d within 1.5x
    assert "timed 1 time" in provisional_reason([outcome("fast", 1.0, samples=1)], ORDER, 0.03)


def test_a_near_win_on_fewer_than_three_samples_goes_to_f_conv1d() -> None:
    """A call so long that only its warm-up fits the budget: one sample varies by 2-3x even
    on a quiet machine, so F.conv1d keeps the decision unless beaten by 1.5x."""
    one = [outcome("direct", 1.07, samples=1), outcome("fast", 1.0, samples=1)]
    assert tie_winner(one, ORDER, 0.03).candidate.name == "direct"
    assert tie_winner([outcome("direct", 1.07, samples=1), outcome("fast", 1.0, samples=3)],
                      ORDER, 0.03).candidate.name == "fast"  # settled: the usual margin
    assert tie_winner([outcome("direct", 1.6, samples=1), outcome("fast", 1.0, samples=2)],
                      ORDER, 0.03).candidate.name == "fast"  # a clear lead still wins


def test_a_contended_near_win_goes_to_f_conv1d() -> None:
    busy = f"{CONTENDED_NOTE} 4 of 4 samples disturbed"
    near = [outcome("direct", 1.45), outcome("fast", 1.0, note=busy)]
    assert tie_winner(near, ORDER, 0.03).candidate.name == "direct"
    quiet = [outcome("direct", 1.2), outcome("fast", 1.0)]
    assert tie_winner(quiet, ORDER, 0.03).candidate.name == "fast"
    clear = [outcome("direct", 1.6), outcome("fast", 1.0, note=busy)]
    assert tie_winner(clear, ORDER, 0.03).candidate.name == "fast"
    # between two strategies that are not F.conv1d, the usual margin
    other = [outcome("direct", 9.0), outcome("other", 1.2, note=busy),
             outcome("fast", 1.0, note=busy)]
    assert tie_winner(other, ["direct", "other", "fast"], 0.03).candidate.name == "fast"


def test_a_busy_machines_spread_ties_nothing() -> None:
    busy = f"{CONTENDED_NOTE} 12 of 12 samples disturbed"
    order = ["direct", "other", "fast"]

    def pair(note):
        return [Outcome(Candidate(Strategy("other", correct), ()), 7.8e-3, 14e-3, 12,
                        note=note),
                Outcome(Candidate(Strategy("fast", correct), ()), 1.2e-3, 1e-3, 12, note=note)]

    assert tie_winner(pair(None), order, 0.03).candidate.name == "other"  # IQRs overlap
    assert tie_winner(pair(busy), order, 0.03).candidate.name == "fast"


def test_a_contended_measurement_is_stored_as_provisional() -> None:
    def busy_timer(candidates, *, device, deadline, max_samples, min_samples=1, **_):
        return [Timing(1e-3 if c.candidate.name == "fast" else 3e-3, 1e-4, 8, disturbed=8,
                       peak_excess=2, contended=True) for c in candidates]

    store = FakeStore()
    strategies = [Strategy("direct", direct, reference=True), Strategy("fast", correct)]
    selector = Selector(strategies=strategies, timer=busy_timer, store=store,
                        settings=Settings(bucket_lengths=False))
    choice = selector.choose(SIG, CPU)
    assert choice.strategy == "fast"  # 3x: a clear win even on a busy machine
    rows = store.rows[(SIG, CPU)]
    assert all(row.note.startswith(CONTENDED_NOTE) for row in rows)
    assert "8 of 8 samples disturbed, up to 2 thread(s) waiting for a core" in rows[0].note
    assert selector.provisional_reason(rows) is not None
    assert math.isclose(min(r.median_s for r in rows), 1e-3)


@pytest.mark.parametrize("busy_now", [False, True])
def test_a_contended_stored_decision_is_measured_again_once_the_machine_is_quiet(
        busy_now: bool) -> None:
    busy = f"{CONTENDED_NOTE} 6 of 6 samples disturbed"
    store = FakeStore()
    strategies = [Strategy("direct", direct, reference=True), Strategy("fast", correct)]
    store.rows[(SIG, CPU)] = [Outcome(Candidate(strategies[0], ()), 9e-3, 0.0, 6, note=busy),
                              Outcome(Candidate(strategies[1], ()), 1e-3, 0.0, 6, note=busy)]
    timed = []

    def quiet_timer(candidates, *, device, deadline, max_samples, min_samples=1, **_):
        timed.append([c.candidate.name for c in candidates])
        return [Timing(1e-3 if c.candidate.name == "direct" else 2e-3, 0.0, 9)
                for c in candidates]

    load = MachineLoad(read_runnable=lambda: 2 if busy_now else 0,
                       cores=torch.get_num_threads())
    selector = Selector(strategies=strategies, timer=quiet_timer, store=store, load=load,
                        settings=Settings(bucket_lengths=False))
    choice = selector.choose(SIG, CPU)
    if busy_now:  # still busy: the stored (provisional) decision stands, nothing is timed
        assert (choice.strategy, choice.source, timed) == ("fast", "database", [])
    else:
        assert (choice.strategy, choice.source) == ("direct", "measured") and timed


def test_an_estimate_taken_on_a_busy_machine_is_contended() -> None:
    reference = Candidate(Strategy("direct", direct, reference=True), ())
    quiet = Outcome.estimated(reference, 3.0, "windows")
    busy = Outcome.estimated(reference, 3.0, "windows", busy=True)
    assert not quiet.contended and quiet.note == "estimated: windows"
    assert busy.contended and busy.note.startswith(CONTENDED_NOTE)


@pytest.mark.parametrize("busy", [False, True])
def test_a_busy_machine_is_measured_at_one_thread_and_the_decision_is_provisional(
        busy: bool) -> None:
    threads_seen, clocks_seen = [], []

    def timer(candidates, *, device, deadline, max_samples, min_samples=1,
              thread_clock=None, **_):
        threads_seen.append(torch.get_num_threads())
        clocks_seen.append(thread_clock)
        # clean samples: at one thread nothing waits for a core
        return [Timing(1e-3 if c.candidate.name == "fast" else 3e-3, 1e-4, 8)
                for c in candidates]

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        store = FakeStore()
        load = MachineLoad(read_runnable=lambda: 2 if busy else 0, cores=2)
        selector = Selector(strategies=[Strategy("direct", direct, reference=True),
                                        Strategy("fast", correct)],
                            timer=timer, store=store, load=load,
                            settings=Settings(bucket_lengths=False))
        choice = selector.choose(SIG, CPU)
        assert torch.get_num_threads() == 2  # the caller's count, restored
    finally:
        torch.set_num_threads(before)
    assert choice.strategy == "fast"  # 3x: beyond the contended margin
    rows = store.rows[(SIG, CPU)]
    assert threads_seen == [1 if busy else 2]
    # busy: timed on the thread's CPU clock, which waiting for a core does not advance
    assert clocks_seen == [time.thread_time if busy else None]
    if busy:
        assert all(row.note.startswith(
            f"{CONTENDED_NOTE} timed at 1 torch thread of 2 on its CPU clock") for row in rows)
        assert selector.provisional_reason(rows) is not None
    else:
        assert all(row.note is None for row in rows)
        assert selector.provisional_reason(rows) is None


def test_one_thread_when_busy_restores_the_count_when_timing_raises() -> None:
    from autoconv.tuning.contention import one_thread_when_busy

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError), one_thread_when_busy(
                MachineLoad(read_runnable=lambda: 5, cores=2), CPU) as reduced:
            assert reduced == 2 and torch.get_num_threads() == 1
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
        with one_thread_when_busy(MachineLoad(read_runnable=lambda: 5, cores=2),
                                  torch.device("cuda")) as reduced:
            assert reduced is None and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_blip_at_the_start_of_tuning_keeps_the_callers_threads() -> None:
    """One reading is instantaneous and a quiet machine sometimes reads busy: tuning moves
    to one thread only when every one of several readings says busy."""
    from autoconv.tuning.contention import STEADY_READINGS, one_thread_when_busy

    def load(readings):
        values = iter(readings)
        return MachineLoad(read_runnable=lambda: next(values, 0), cores=2)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread_when_busy(load([2] * (STEADY_READINGS - 1)), CPU) as reduced:
            assert reduced is None and torch.get_num_threads() == 2
        with one_thread_when_busy(load([2] * STEADY_READINGS), CPU) as reduced:
            assert reduced == 2 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
