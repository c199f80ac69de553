"""How busy the machine is while candidates are timed.

On a CPU shared with other work, torch's threads wait for a free core at each parallel region,
so one call can take 20-50 times its quiet time for a while. A sample taken then says nothing
about the candidate, and a decision built on it is stored and shared. The timer therefore asks,
before and after each sample, whether other processes' runnable threads and torch's own
outnumber the cores (:class:`MachineLoad`): a sample taken while they did is *disturbed*, and
is kept apart (:func:`autoconv.tuning.timing.measure_interleaved`).

The count is Linux's ``procs_running`` (``/proc/stat``) less this process's running threads
(``/proc/self/task``): instantaneous, unlike the load average (a one-minute mean), and about
30 microseconds to read. Measured on this project's 2-core test machine between calls of
``F.conv1d`` (2 torch threads): quiet, 0-2% of samples read busy at both ends; beside one
spinning process, 100%, and a 7 ms call took 11-69 ms beside two.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

#: :meth:`MachineLoad.stays_busy` takes this many readings, this many seconds apart.
STEADY_READINGS = 4
STEADY_PAUSE_S = 0.002

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


def own_running_threads(task_dir: str = "/proc/self/task") -> int | None:
    """This process's threads that are running or runnable now (Linux), or None."""
    try:
        tasks = os.listdir(task_dir)
    except OSError:
        return None
    running = 0
    for task in tasks:
        try:
            with open(f"{task_dir}/{task}/stat", "rb") as stat:
                # "pid (comm) S ...": the state follows the last ')' (comm may hold spaces)
                running += stat.read().rpartition(b")")[2].split()[0] == b"R"
        except (OSError, IndexError):
            continue
    return running


def other_runnable_threads() -> int | None:
    """Threads of other processes runnable on the machine now: :func:`runnable_threads`
    less this process's own (Linux); elsewhere the load average, less nothing."""
    total = runnable_threads()
    if total is None:
        return None
    own = own_running_threads()
    return total if own is None else max(0, total - own)


@dataclass
class MachineLoad:
    """Whether the machine is busier than this process can use it undisturbed.

    The machine is *busy* when other processes' runnable threads and torch's threads
    together outnumber its cores: torch's parallel regions then wait for a core. (Counting
    this process's own threads as they are at the moment of reading would miss a neighbour
    whenever torch's workers happen to sleep between calls.)

    Args:
        read_runnable: the reading of other processes' runnable threads (injectable: tests
            use a scripted one); default :func:`other_runnable_threads`, looked up when read.
        cores: the machine's cores (``os.cpu_count()``: the reading is machine-wide).
    """

    read_runnable: RunnableReader | None = None
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    #: the largest excess seen since :meth:`reset_peak` (threads waiting for a core)
    peak_excess: int = 0

    def excess(self) -> int | None:
        """Threads beyond what the machine can run at once (None: unknown)."""
        others = (self.read_runnable or other_runnable_threads)()
        if others is None:
            return None
        excess = others + torch.get_num_threads() - self.cores
        self.peak_excess = max(self.peak_excess, excess)
        return excess

    def busy(self) -> bool:
        """Whether other work competes for the cores right now."""
        excess = self.excess()
        return excess is not None and excess > 0

    def stays_busy(self, readings: int = STEADY_READINGS, pause_s: float = STEADY_PAUSE_S
                   ) -> bool:
        """Whether the machine reads busy at each of ``readings`` readings, ``pause_s``
        apart: busy for a while, not a blip.

        One reading is instantaneous, and a quiet machine sometimes reads busy: on this
        project's 2-core test machine, 14-30 of 300 readings taken right after or 10 ms
        after an ``F.conv1d`` call counted one runnable thread of another process. Beside
        another process that keeps a core busy, every reading does.
        """
        for index in range(readings):
            if index:
                time.sleep(pause_s)
            if not self.busy():
                return False
        return True

    def reset_peak(self) -> None:
        """Start counting :attr:`peak_excess` afresh (one measurement's worth)."""
        self.peak_excess = 0


class QuietMachine:
    """A load that never reports contention (CUDA timing, which events time on the device,
    and tests that want the timer's plain behaviour)."""

    peak_excess = 0

    def busy(self) -> bool:
        return False

    def stays_busy(self) -> bool:
        return False

    def reset_peak(self) -> None:
        pass


@contextmanager
def one_thread_when_busy(load: MachineLoad | QuietMachine | None, device: torch.device
                         ) -> Iterator[int | None]:
    """Time with one torch thread while other work holds the CPU's cores.

    With several threads, each of torch's parallel regions waits for its slowest thread,
    and on a shared CPU that thread is often descheduled: a call of many short regions (an
    FFT pipeline) is slowed far more than one long region (``F.conv1d``), so timings taken
    then misrank the candidates. Measured on this project's 2-core machine beside two
    spinning processes, a depthwise 1024-tap layer: at 2 threads the FFT strategies timed
    1.6x *slower* than ``F.conv1d``; at 1 thread 2.9x faster, as they are on a quiet
    machine. One thread waits for nothing but its own share of a core, so every candidate
    is slowed alike and the ranking holds.

    The machine is busy when it reads so several times in a row
    (:meth:`MachineLoad.stays_busy`). Yields the thread count the block was switched from
    (None: nothing changed: a quiet machine, a GPU, or one thread already); the caller's count is restored afterwards. The
    count is process-wide, so other threads' torch calls run on one thread meanwhile.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads <= 1 or load is None or not load.stays_busy():
        yield None
        return
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)
