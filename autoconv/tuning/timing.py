"""Measuring how long callables take, on CPU or CUDA, robust to noise.

Candidates are timed interleaved, in a new shuffled order every round, so that drift of the
machine (frequency scaling, another process waking up) hits all of them alike, and summarised
by the median and the interquartile spread. The tuner receives a timer as a plain callable, so
its tests can use a fake one and never depend on wall-clock time.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

Clock = Callable[[], float]


@dataclass(frozen=True)
class Timing:
    """The summary of one candidate's timed calls.

    Attributes:
        median_s: median wall time of one call, seconds (``inf`` if the candidate raised).
        spread_s: interquartile range of the samples, seconds (0 with fewer than 4 samples:
            the range of the samples instead).
        samples: number of timed calls.
        failure: the exception message if the candidate raised while being timed.
    """

    median_s: float
    spread_s: float
    samples: int
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def summarize(samples: Sequence[float]) -> Timing:
    """Median and spread of a non-empty list of sample times."""
    if len(samples) >= 4:
        quartiles = statistics.quantiles(samples, n=4)
        spread = quartiles[2] - quartiles[0]
    else:
        spread = max(samples) - min(samples)
    return Timing(statistics.median(samples), spread, len(samples))


class Timer(Protocol):
    """Times candidates interleaved until a deadline; what the tuner calls."""

    def __call__(self, candidates: Sequence[Callable[[], Any]], *, device: torch.device,
                 deadline: float, max_samples: int, min_samples: int = 1) -> list[Timing]: ...


def _time_one_cpu(fn: Callable[[], Any], clock: Clock) -> float:
    start = clock()
    fn()
    return clock() - start


def _time_one_cuda(fn: Callable[[], Any], device: torch.device) -> float:
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    stream = torch.cuda.current_stream(device)
    start.record(stream)
    fn()
    end.record(stream)
    end.synchronize()
    return start.elapsed_time(end) / 1000.0


def time_call(fn: Callable[[], Any], device: torch.device, clock: Clock = time.perf_counter
              ) -> float:
    """Seconds one call of ``fn`` takes on ``device`` (CUDA: measured with events)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return _time_one_cuda(fn, device)
    return _time_one_cpu(fn, clock)


def round_orders(count: int, seed: int = 0) -> Iterator[list[int]]:
    """The order of each timing round over ``count`` candidates: a fresh shuffle per round.

    Neither a fixed order nor a rotation (A B C, B C A, ...) will do on a shared machine: a
    call's place in the round, and the call that ran just before it (which buffers it freed,
    which caches it filled), can bias it the same way round after round, and a rotation still
    keeps each candidate's predecessor (with a rotation, the selection benchmark timed one and
    the same ``F.conv1d`` call about twice as slow in one cell as in another, run after run).
    Seeded, so repeatable.
    """
    rng = random.Random(seed)
    order = list(range(count))
    while True:
        rng.shuffle(order)
        yield list(order)


def measure_interleaved(candidates: Sequence[Callable[[], Any]], *, device: torch.device,
                        deadline: float, max_samples: int = 25, min_samples: int = 1,
                        clock: Clock = time.perf_counter) -> list[Timing]:
    """Time each candidate in rounds, each in a new shuffled order (:func:`round_orders`),
    until ``deadline`` or ``max_samples``.

    Every candidate gets at least ``min_samples`` samples (default one); a further round
    starts only if the previous round's duration still fits before the deadline, so the
    deadline is overrun by at most the first ``min_samples`` rounds.
    The callables are assumed warmed up (called once) by the caller. A candidate that raises
    gets ``median_s=inf`` and its message, and is not called again.

    Args:
        candidates: zero-argument callables, each one convolution (or forward + backward).
        device: where they run; CUDA timing uses events and synchronises.
        deadline: a ``clock()`` value after which no new round starts.
        max_samples: the most timed calls per candidate.
        min_samples: the fewest, deadline or not (capped by ``max_samples``).
        clock: the wall clock (injectable for tests).

    Returns:
        One :class:`Timing` per candidate, in order.
    """
    samples: list[list[float]] = [[] for _ in candidates]
    failures: list[str | None] = [None] * len(candidates)
    for round_index, order in zip(range(max_samples), round_orders(len(candidates))):
        round_start = clock()
        for index in order:
            fn = candidates[index]
            if failures[index] is not None:
                continue
            try:
                samples[index].append(time_call(fn, device, clock))
            except Exception as error:  # a failing candidate loses; it never aborts tuning
                failures[index] = f"{type(error).__name__}: {error}"
        if round_index + 1 >= min_samples and clock() + (clock() - round_start) > deadline:
            break
    return [Timing(float("inf"), 0.0, len(s), failure) if failure is not None or not s
            else summarize(s) for s, failure in zip(samples, failures)]
