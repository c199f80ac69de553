"""A steady machine for tests that warm through the real selector: a fake clock and timer
that make every decision the same, whatever the machine's speed or load.

On a busy machine a real 0.1 s budget can leave a decision provisional (``F.conv1d`` probed
on one slow window, estimated rather than timed, one sample), and a resumed warm then
measures it again. With these, the strategies still run (warm-up, the check against
``F.conv1d``), but no time is read from the wall.
"""

from __future__ import annotations

from autoconv.tuning.timing import Timing

#: Seconds each read of :class:`StepClock` moves on: every probe and warm-up call "takes" it.
STEP_S = 1e-6


class StepClock:
    """A clock that moves :data:`STEP_S` on each read: the reference probe grows to the whole
    call and every budget lasts, on any machine."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += STEP_S
        return self.now


def steady_timer(candidates, *, device, deadline, max_samples, min_samples=1, **_):
    """``F.conv1d`` as called takes 1 ms, every other candidate 2 ms, each timed
    ``min_samples`` to ``max_samples`` times (5 when both allow): settled decisions unless the
    settings cap the samples below :data:`~tuning_db.records.SETTLED_SAMPLES`."""
    samples = max(min_samples, min(max_samples, 5))
    return [Timing(1e-3 if c.candidate.is_plain_conv1d else 2e-3, 0.0, samples)
            for c in candidates]


class ManualClock:
    """A clock that moves only when a test moves it (``clock.now += seconds``): scripted
    strategies "take" exactly what they are told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def busy_timer(candidates, *, device, deadline, max_samples, min_samples=1, **_):
    """As :func:`steady_timer`, on a machine busy throughout: every sample disturbed, so
    every timing is contended and every decision provisional."""
    return [Timing(t.median_s, t.spread_s, t.samples, disturbed=t.samples, peak_excess=2,
                   contended=True)
            for t in steady_timer(candidates, device=device, deadline=deadline,
                                  max_samples=max_samples, min_samples=min_samples)]


def busy_load():
    """A machine load that always reads busy (others' threads outnumber the cores)."""
    from autoconv.tuning.contention import MachineLoad

    return MachineLoad(read_runnable=lambda: 64, cores=2)
