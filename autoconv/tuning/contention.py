"""How busy the machine is while candidates are timed.

On a CPU shared with other work, torch's threads wait for a free core at each parallel region,
so one call can take 20-50 times its quiet time for a while. A sample taken then says nothing
about the candidate, and a decision built on it is stored and shared. The timer therefore asks,
before and after each sample, whether more threads are runnable on the machine than it has
cores (:class:`MachineLoad`): a sample taken while they were is *disturbed*, and is kept apart
(:func:`autoconv.tuning.timing.measure_interleaved`).

Measured on this project's 2-core test machine, between calls of a 7 ms ``F.conv1d``: quiet,
``/proc/stat``'s ``procs_running`` read 2 (this process and a torch worker); with two busy
processes beside it, 4, and the same call took 11-69 ms. The count is instantaneous (unlike
the load average, a one-minute mean) and costs a few microseconds to read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

#: Reads how many threads are runnable on the whole machine right now (None: unknown).
RunnableReader = Callable[[], "int | None"]


def runnable_threads(path: str = "/proc/stat") -> int | None:
    """Threads runnable (running or waiting for a core) on the machine now, from Linux's
    ``/proc/stat`` ``procs_running``; elsewhere the one-minute load average, rounded (a mean
    that lags, but the best a portable call offers); None when neither can be read."""
    try:
        with open(path, "rb") as stat:
            for line in stat:
                if line.startswith(b"procs_running"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        return round(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


@dataclass
class MachineLoad:
    """Whether the machine is busier than this process can use it undisturbed.

    The machine is *busy* when more threads are runnable than it has cores (or than torch
    uses, when torch is set to more threads than there are cores: those are this process's
    own). Nothing else is running when the count equals this process's own busy threads.

    Args:
        read_runnable: the reading (injectable: tests use a scripted one).
        cores: the machine's cores (``os.cpu_count()``: the reading is machine-wide).
    """

    read_runnable: RunnableReader = runnable_threads
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: the largest excess seen since :meth:`reset_peak` (threads waiting for a core)
    peak_excess: int = 0

    def excess(self) -> int | None:
        """Runnable threads beyond what the machine can run at once (None: unknown)."""
        runnable = self.read_runnable()
        if runnable is None:
            return None
        excess = runnable - max(self.cores, torch.get_num_threads())
        self.peak_excess = max(self.peak_excess, excess)
        return excess

    def busy(self) -> bool:
        """Whether other work competes for the cores right now."""
        excess = self.excess()
        return excess is not None and excess > 0

    def reset_peak(self) -> None:
        """Start counting :attr:`peak_excess` afresh (one measurement's worth)."""
        self.peak_excess = 0


class QuietMachine:
    """A load that never reports contention (CUDA timing, which events time on the device,
    and tests that want the timer's plain behaviour)."""

    peak_excess = 0

    def busy(self) -> bool:
        return False

    def reset_peak(self) -> None:
        pass
