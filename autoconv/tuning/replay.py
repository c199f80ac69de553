"""Timings recorded on a machine, replayed through the timer: decisions tested exactly.

A tuning decision depends on what the machine did while it was timed: each sample's
duration, and whether other work competed for the cores around it. :class:`RecordingTimer`
times candidates as the tuner does (:func:`~autoconv.tuning.timing.measure_interleaved`) and
keeps those observations (a :class:`TimingRecording` per call); :class:`ReplayTimer` runs the
same timer again on them, with a virtual clock that moves only by the recorded durations and
a load that answers the recorded readings. The racing, tie and contention rules run for real;
only the machine is replayed (in the spirit of kernel_tuner's simulation runner). A recording
taken on a busy machine is a test of what autoconv decides there, on any machine, exactly.

Recordings are plain JSON (:meth:`TimingRecording.to_json`), keyed by candidate labels.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from autoconv.tuning.contention import MachineLoad, QuietMachine
from autoconv.tuning.timing import DROP_FACTOR, Clock, Timing, measure_interleaved


def _label(candidate: Callable[[], Any]) -> str:
    """A timed callable's candidate label (a :class:`CandidateCall`'s), else its repr."""
    inner = getattr(candidate, "candidate", None)
    return inner.label if inner is not None else repr(candidate)


@dataclass
class TimingRecording:
    """What one timing run observed.

    Attributes:
        left_s: seconds from its start to its deadline.
        max_samples, min_samples, drop_factor: the timer's arguments.
        samples: per candidate label, each timed call's seconds, in order.
        readings: every answer the machine's load gave (busy or not), in order.
        peak_excess: the most threads seen waiting for a core.
    """

    left_s: float
    max_samples: int
    min_samples: int
    drop_factor: float | None
    samples: dict[str, list[float]] = field(default_factory=dict)
    readings: list[bool] = field(default_factory=list)
    peak_excess: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"left_s": self.left_s, "max_samples": self.max_samples,
                "min_samples": self.min_samples, "drop_factor": self.drop_factor,
                "samples": self.samples, "readings": self.readings,
                "peak_excess": self.peak_excess}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimingRecording:
        return cls(float(data["left_s"]), int(data["max_samples"]), int(data["min_samples"]),
                   None if data["drop_factor"] is None else float(data["drop_factor"]),
                   {str(k): [float(s) for s in v] for k, v in data["samples"].items()},
                   [bool(r) for r in data["readings"]], int(data.get("peak_excess", 0)))


def save(recordings: Sequence[TimingRecording], path: Path | str) -> None:
    """Write recordings as JSON."""
    Path(path).write_text(json.dumps([r.to_json() for r in recordings], indent=1) + "\n",
                          encoding="utf-8")


def load(path: Path | str) -> list[TimingRecording]:
    """Read recordings written by :func:`save`."""
    return [TimingRecording.from_json(item)
            for item in json.loads(Path(path).read_text(encoding="utf-8"))]


class _RecordedLoad:
    """A machine's load that keeps each answer it gives."""

    def __init__(self, load: MachineLoad | QuietMachine, readings: list[bool]) -> None:
        self.load = load
        self.readings = readings

    @property
    def peak_excess(self) -> int:
        return self.load.peak_excess

    def busy(self) -> bool:
        answer = self.load.busy()
        self.readings.append(answer)
        return answer

    def reset_peak(self) -> None:
        self.load.reset_peak()


class RecordingTimer:
    """The tuner's timer, keeping what it observed (:attr:`recordings`, one per call).

    Args:
        clock: the wall clock; load: the machine's load (default: read it, on the CPU).
    """

    def __init__(self, clock: Clock = time.perf_counter,
                 load: MachineLoad | QuietMachine | None = None) -> None:
        self.clock = clock
        self.load = load
        self.recordings: list[TimingRecording] = []

    def __call__(self, candidates: Sequence[Callable[[], Any]], *, device: torch.device,
                 deadline: float, max_samples: int, min_samples: int = 1,
                 drop_factor: float | None = DROP_FACTOR) -> list[Timing]:
        recording = TimingRecording(deadline - self.clock(), max_samples, min_samples,
                                    drop_factor)
        load = self.load or (QuietMachine() if device.type == "cuda" else MachineLoad())

        def timed(candidate: Callable[[], Any]) -> Callable[[], Any]:
            durations = recording.samples.setdefault(_label(candidate), [])

            def call() -> Any:
                start = self.clock()
                try:
                    return candidate()
                finally:
                    durations.append(self.clock() - start)
            return call

        timings = measure_interleaved(
            [timed(c) for c in candidates], device=device, deadline=deadline,
            max_samples=max_samples, min_samples=min_samples, clock=self.clock,
            drop_factor=drop_factor, load=_RecordedLoad(load, recording.readings))
        recording.peak_excess = load.peak_excess
        self.recordings.append(recording)
        return timings


class _ReplayedLoad:
    def __init__(self, recording: TimingRecording) -> None:
        self._readings = iter(recording.readings)
        self.peak_excess = recording.peak_excess

    def busy(self) -> bool:
        return next(self._readings, False)  # past the recording: quiet

    def reset_peak(self) -> None:
        pass


class _VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ReplayTimer:
    """Replays recordings, one per call, in order (:class:`RecordingTimer`'s): the real
    timer runs on a virtual clock that moves by the recorded durations, against the recorded
    readings of the load, and the recorded deadline (the one passed in is for the tuner's own
    clock).

    Raises (when called):
        LookupError: no recording left, or one without samples of a candidate it is asked
            to time (recorded for other candidates).
    """

    def __init__(self, recordings: Sequence[TimingRecording]) -> None:
        self._recordings = iter(recordings)

    def __call__(self, candidates: Sequence[Callable[[], Any]], *, device: torch.device,
                 deadline: float, max_samples: int, min_samples: int = 1,
                 drop_factor: float | None = DROP_FACTOR) -> list[Timing]:
        recording = next(self._recordings, None)
        if recording is None:
            raise LookupError("no timing recording left to replay")
        clock = _VirtualClock()

        def replayed(candidate: Callable[[], Any]) -> Callable[[], None]:
            label = _label(candidate)
            if label not in recording.samples:
                raise LookupError(f"the recording has no samples of {label}")
            durations = iter(recording.samples[label])

            def call() -> None:
                duration = next(durations, None)
                if duration is None:
                    raise LookupError(f"the recording of {label} ran out of samples")
                clock.now += duration
            return call

        return measure_interleaved(
            [replayed(c) for c in candidates], device=device, deadline=recording.left_s,
            max_samples=recording.max_samples, min_samples=recording.min_samples,
            clock=clock, drop_factor=recording.drop_factor, load=_ReplayedLoad(recording))
