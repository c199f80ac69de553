"""Recorded timings replayed through the real timer (autoconv.tuning.replay): a replay gives
what the recorded run gave, and a recording taken on a busy machine decides, on any machine,
exactly what autoconv decided there."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from autoconv.settings import Settings
from autoconv.signature import Signature
from autoconv.strategies import get
from autoconv.tuning.candidates import Candidate, CandidateCall, ConvInputs
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.replay import RecordingTimer, ReplayTimer, TimingRecording, load, save
from autoconv.tuning.selector import Selector
from autoconv.tuning.timing import Timing
from tests.steady import ManualClock

CPU = torch.device("cpu")
DATA = Path(__file__).parent / "data"
CANDIDATES = [Candidate(get("direct"), ()), Candidate(get("fft"), ()),
              Candidate(get("overlap_add"), (("block_size", 2048),))]


class ScriptedLoad:
    """Busy on a fixed pattern of readings: some samples disturbed, some not."""

    def __init__(self) -> None:
        self._pattern = itertools.cycle([False, True, True, False, True])
        self.peak_excess = 0

    def busy(self) -> bool:
        busy = next(self._pattern)
        self.peak_excess = max(self.peak_excess, 2 * busy)
        return busy

    def reset_peak(self) -> None:
        self.peak_excess = 0


def small_calls(clock: ManualClock) -> list:
    """Three candidates of a small signature that 'take' 1, 1.5 and 3 ms on ``clock``."""
    signature = Signature(2, 4, 4, 300, 9, 1, 0, 0, 1, 1, "float32", "cpu")
    inputs = ConvInputs.random(signature, CPU)
    calls = []
    for candidate, seconds in zip(CANDIDATES, (1e-3, 1.5e-3, 3e-3)):
        call = CandidateCall(candidate, inputs)

        def timed(call=call, seconds=seconds):
            clock.now += seconds
            return call()
        timed.candidate = candidate  # labelled as the tuner's calls are
        calls.append(timed)
    return calls


def test_a_replay_gives_what_the_recorded_run_gave(tmp_path: Path) -> None:
    clock = ManualClock()
    recorder = RecordingTimer(clock=clock, load=ScriptedLoad())
    recorded = recorder(small_calls(clock), device=CPU, deadline=0.2, max_samples=9)
    save(recorder.recordings, tmp_path / "run.json")
    [recording] = load(tmp_path / "run.json")
    assert isinstance(recording, TimingRecording) and any(recording.readings)
    replayed = ReplayTimer([recording])(small_calls(ManualClock()), device=CPU,
                                        deadline=123.0, max_samples=9)
    for theirs, ours in zip(recorded, replayed):
        assert (ours.samples, ours.disturbed, ours.contended, ours.peak_excess) == (
            theirs.samples, theirs.disturbed, theirs.contended, theirs.peak_excess)
        assert ours.median_s == pytest.approx(theirs.median_s)
    timed_calls = [len(calls) for calls in recording.samples.values()]
    assert timed_calls[2] < timed_calls[0]  # the 3 ms one was raced out


def test_a_busy_machines_recording_keeps_f_conv1d_and_says_provisional() -> None:
    # recorded with scripts/record_busy_timings.py beside 2 spinning processes on the 2-core
    # VM: every sample disturbed; FFT, 3x faster than F.conv1d on the quiet machine, timed
    # slower, overlap-add 1.24x faster: a busy machine's margin, not a decision
    timer = ReplayTimer(load(DATA / "busy_long_conv.json"))
    calls = [type("Call", (), {"candidate": c, "__call__": lambda self: None})()
             for c in CANDIDATES]
    timings: list[Timing] = timer(calls, device=CPU, deadline=0.0, max_samples=25)
    assert all(t.contended and t.disturbed == t.samples for t in timings)
    outcomes = [Outcome.timed(c, t, None) for c, t in zip(CANDIDATES, timings)]
    assert any(o.note.startswith("contended:") for o in outcomes)
    selector = Selector(strategies=[get("direct"), get("fft"), get("overlap_add")],
                        settings=Settings(), store=None)
    choice = selector.pick_winner(outcomes)
    assert (choice.strategy, choice.params_dict) == ("direct", {})
    reason = selector.provisional_reason(outcomes)
    assert reason is not None and "busy machine" in reason


def test_a_replay_refuses_candidates_it_has_no_samples_of() -> None:
    recording = TimingRecording(1.0, 5, 1, None, samples={"direct": [1e-3]}, readings=[])
    calls = [type("Call", (), {"candidate": CANDIDATES[1], "__call__": lambda self: None})()]
    with pytest.raises(LookupError, match="no samples of fft"):
        ReplayTimer([recording])(calls, device=CPU, deadline=0.0, max_samples=5)
    with pytest.raises(LookupError, match="no timing recording left"):
        ReplayTimer([])(calls, device=CPU, deadline=0.0, max_samples=5)
