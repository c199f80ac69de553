"""Measuring how long callables take, on CPU or CUDA, robust to noise.

Candidates are timed interleaved, in a new shuffled order every round, so that drift of the
machine (frequency scaling, another process waking up) hits all of them alike, and summarised
by the median and the interquartile spread. The tuner receives a timer as a plain callable, so
its tests can use a fake one and never depend on wall-clock time.
"""

from __future__ import annotations

import functools
import math
import random
import statistics
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch

from autoconv.tuning.contention import MachineLoad, QuietMachine
from tuning_db.records import SETTLED_SAMPLES

Clock = Callable[[], float]
#: A candidate whose fastest sample exceeds this many times the best candidate's median is
#: dropped from the race (:func:`clearly_slower`): far outside the tie rule's few percent.
DROP_FACTOR = 1.5
#: Once both have ``SETTLED_SAMPLES`` samples, a candidate whose fastest sample exceeds this
#: many times the best's median is dropped too.
SETTLED_FACTOR = 1.2
#: From this many samples each, a candidate whose interquartile range lies wholly above the
#: best's is dropped: the answer is clear even when the gap is small.
SEPARATED_SAMPLES = 6
#: Candidates whose medians are within this factor after :data:`TIE_SAMPLES` samples each
#: are tied (the selector's tie rule then prefers the simpler one): the race ends.
TIED_FACTOR = 1.03
TIE_SAMPLES = 5
#: Sample counts at which the slower half of the candidates still racing is dropped:
#: this, twice this, four times this, ... (:func:`halved`): medians of fewer samples
#: are too easily swayed by one stall.
HALVING_AT = 6


@dataclass(frozen=True)
class Timing:
    """The summary of one candidate's timed calls.

    Attributes:
        median_s: median wall time of one call, seconds (``inf`` if the candidate raised).
        spread_s: interquartile range of the samples, seconds (with fewer than 4 samples:
            their range), at most twice the distance from the median down to the fastest
            sample (:func:`summarize`).
        samples: number of timed calls the summary is made of.
        failure: the exception message if the candidate raised while being timed.
        disturbed: samples taken while the machine was busy
            (:mod:`autoconv.tuning.contention`): left out of the summary when enough
            undisturbed ones remain, else in it (and the timing is :attr:`contended`).
        peak_excess: the most threads seen waiting for a core while it was timed.
        contended: whether the summary had to use disturbed samples (too few undisturbed
            ones): its time is a busy machine's, and the decision it makes is provisional.
    """

    median_s: float
    spread_s: float
    samples: int
    failure: str | None = None
    disturbed: int = 0
    peak_excess: int = 0
    contended: bool = False

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def busy_note(self) -> str:
        """How busy the machine was, for a note (empty when unknown)."""
        return (f", up to {self.peak_excess} thread(s) waiting for a core"
                if self.peak_excess > 0 else "")


def summarize(samples: Sequence[float]) -> Timing:
    """Median and spread of a non-empty list of sample times.

    The spread is the interquartile range (the range, under 4 samples), but never more than
    twice the distance from the median down to the fastest sample. The tie rule reads a
    candidate's times as its median plus or minus half its spread
    (:func:`~autoconv.tuning.outcome.tie_winner`), and a few samples of which one stalled
    have a wide spread lying wholly above the median: read symmetrically, it reached far
    below any time the candidate took. Tuning wav2vec2's first layer (4x1x16000, 512
    channels, K=10, stride 5), ``F.conv1d``'s samples 14.6, 3.55 and 2.96 ms made a median
    of 3.55 ms and a range of 11.7 ms, whose low end (-2.3 ms) tied the unfold-and-multiply
    at 2.12 ms; now the spread is 1.18 ms, its low end 2.96 ms, and the multiply wins.
    """
    median = statistics.median(samples)
    if len(samples) >= 4:
        quartiles = statistics.quantiles(samples, n=4)
        spread = quartiles[2] - quartiles[0]
    else:
        spread = max(samples) - min(samples)
    return Timing(median, min(spread, 2 * (median - min(samples))), len(samples))


#: Undisturbed samples a timing needs to be summarised on them alone (fewer: the disturbed
#: ones join them, and the timing is contended).
CLEAN_SAMPLES = 3


def summarize_disturbed(clean: Sequence[float], disturbed: Sequence[float],
                        peak_excess: int = 0) -> Timing:
    """The timing of a candidate some of whose samples were taken on a busy machine.

    With :data:`CLEAN_SAMPLES` undisturbed samples (or more undisturbed than disturbed), the
    summary is theirs: a stall that came and went is left out, and the disturbed samples are
    only counted. Otherwise the machine stayed busy, and all of them make the summary, by
    their median: when every sample is slowed, the median ranks candidates more steadily
    than a lower quantile, which picks out the few lucky samples. Measured on the 2-core test
    machine beside two spinning processes, 12 rounds of the overlap-add candidates of a
    4x64x4096, K=511 call: the medians kept the quiet order of the five block sizes, the
    lower quartiles put block 2048 before 1536 (its lower quartile 74 ms against a median of
    175 ms; quiet, 44 ms against 29).
    """
    if not disturbed:
        return summarize(clean)
    if len(clean) >= min(CLEAN_SAMPLES, len(clean) + len(disturbed)) or \
            len(clean) > len(disturbed):
        return replace(summarize(clean), disturbed=len(disturbed), peak_excess=peak_excess)
    return replace(summarize([*clean, *disturbed]), disturbed=len(disturbed),
                   peak_excess=peak_excess, contended=True)


#: Each candidate's first samples, the first half of them and at least this many, are its
#: *warming* ones: once :data:`CLEAN_SAMPLES` more remain, medians and spreads leave them
#: out (:func:`settled`).
WARMING_SAMPLES = 2
#: On its warming samples alone, ``F.conv1d`` as called leaves the race only when even the
#: fastest of them exceeds the best's median this many times (:func:`clearly_slower`).
WARMING_DROP_FACTOR = 4.0


def warming(count: int) -> int:
    """How many of a candidate's first ``count`` samples :func:`settled` leaves out: the
    first half (at least :data:`WARMING_SAMPLES`), once :data:`CLEAN_SAMPLES` remain after
    them; none until then."""
    first = max(WARMING_SAMPLES, count // 2)
    return first if count - first >= CLEAN_SAMPLES else 0


def settled(samples: Sequence[float]) -> Sequence[float]:
    """A candidate's samples without its warming ones (:func:`warming`): the later half,
    once :data:`CLEAN_SAMPLES` remain after the first two (all of them until then).

    A call repeated on a machine does not reach its steady time at once, and not only for
    its first call. On this project's 2-core test machine (a virtual Sapphire Rapids Xeon),
    in a fresh process after a warm-up call, a 26 MB output written by ``F.conv1d`` took
    4.1, 3.1, 2.9, 2.3, 2.1 ms and then 1.8-2.0 ms: filling the same 26 MB buffer again and
    again, with no page fault after the first, took 3.9, 2.9, 1.7, 1.4, then 1.3 ms, and
    the slow passes came back after a second's sleep or 104 MB of other memory written. A
    median and a spread over such samples mix the slow start with the steady state: the
    spread grows, and the tie rules tie candidates that are not tied (wav2vec2's first
    layer at batch 2: ``F.conv1d`` 3.06 ms, spread 1.95, against the unfold-and-multiply's
    1.95 ms, spread 0.29, tied by their spreads; judged in steady rounds, the multiply was
    1.2-1.6x faster).

    The other candidates' calls slow a candidate's next ones in the same way: a tuning of
    that layer timed ``F.conv1d`` at 2.2 ms in steady rounds but at 15.1 ms right after an
    overlap-add that wrote much memory, and an unfold-and-multiply at 8.1 against 1.8 ms;
    such a candidate is soon dropped from the race, so it is the first rounds it spoils. Two
    spoilt samples could drop a candidate at the clear-loss rule's 1.5x (``F.conv1d`` was
    dropped so at 4.1 and 16 ms against 2.6 ms); for ``F.conv1d`` as called, on warming
    samples alone that rule asks :data:`WARMING_DROP_FACTOR` (:func:`clearly_slower`). With a
    30 s budget, that
    layer's ``F.conv1d`` took 8.9, 3.6, 8.8, 9.5, 4.0, 3.1 ms in its first six samples and
    2.2-2.9 ms in its next thirteen: two warming samples are not always enough, hence the
    first half.
    """
    return samples[warming(len(samples)):]


class Timer(Protocol):
    """Times candidates interleaved until a deadline; what the tuner calls (``thread_clock``:
    see :func:`measure_interleaved`)."""

    def __call__(self, candidates: Sequence[Callable[[], Any]], *, device: torch.device,
                 deadline: float, max_samples: int, min_samples: int = 1,
                 thread_clock: Clock | None = None) -> list[Timing]: ...


def thread_cpu_clock() -> Clock | None:
    """The calling thread's CPU time as a clock (seconds), or None where the platform has
    none.

    Waiting for a core does not count on it, so on a CPU shared with other work a call that
    runs wholly on the calling thread (torch at one thread) is timed as on a quiet machine.
    Measured on this project's 2-core test machine at one torch thread, the candidates of a
    32x64x975, K=16, stride 2 layer beside two spinning processes: on the wall clock
    ``F.conv1d`` took 35 ms and overlap-add (block 32) 25 ms, the wrong order; on this
    clock 19.5 and 21.2 ms, within 3% of each one's quiet time, in the quiet order. (It
    still counts what sharing the core's caches costs, which is the same for every
    candidate.)
    """
    try:
        time.thread_time()
    except (OSError, AttributeError):  # pragma: no cover - platforms without a thread clock
        return None
    return time.thread_time


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


#: Bytes of the buffer :func:`settle_allocator` allocates and frees: just under glibc's
#: largest dynamic mmap threshold (32 MiB on 64-bit), the state it settles in by itself.
SETTLE_BYTES = 31 << 20


@functools.cache
def settle_allocator() -> None:
    """Put the C allocator, once per process, in the state a long-running program reaches,
    before anything is timed on the CPU.

    glibc serves a large allocation with a fresh ``mmap`` (whose pages fault in on first
    touch, and go back to the kernel on ``free``) until a freed block above its current
    threshold raises the threshold to that block's size, up to 32 MiB. Until then every call
    that allocates a few MiB pays page faults again: on this project's 2-core test machine,
    ``F.conv1d`` of ``(1, 64, 3726)`` through a ``(128, 64, 1)`` kernel took 3-4 ms in a
    fresh process and 0.65 ms after one 31 MiB buffer had been freed, and which state a
    tuning process was in depended on what it had run before. One allocation freed at once
    is what any program that has freed a tensor of 31 MiB has done; a threshold the user set
    (``MALLOC_MMAP_THRESHOLD_``, ``mallopt``) is left alone (glibc then adjusts nothing), and
    the buffer is never written, so it costs no memory.
    """
    buffer = torch.empty(SETTLE_BYTES, dtype=torch.uint8)
    del buffer


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


def clearly_slower(samples: Sequence[Sequence[float]], failures: Sequence[str | None],
                   factor: float = DROP_FACTOR, references: Collection[int] = ()) -> set[int]:
    """The candidates whose times so far are clearly worse than the best's.

    The best is the candidate with the smallest median (medians and quartiles past the
    warming samples: :func:`settled`). Another is clearly slower when even its fastest
    sample exceeds the best's median ``factor`` times (after two samples), or
    :data:`SETTLED_FACTOR` times once both have ``SETTLED_SAMPLES``, or once both have
    :data:`SEPARATED_SAMPLES` and its lower quartile is above the best's upper quartile.
    Noise on a shared machine only ever makes a call slower, so a candidate's fastest sample
    is a bound that a stall cannot lower, and a stalled sample of the best raises its median
    if anything: a stall that comes and goes can keep a slow candidate in the race, never
    drop a fast one. A slow start can spoil every one of a candidate's first samples,
    though, and ``references`` (``F.conv1d`` as called), which a pick must never be slower
    than, are dropped on their two warming samples alone only above
    :data:`WARMING_DROP_FACTOR` times the best's median, and by :data:`SETTLED_FACTOR` only
    with ``SETTLED_SAMPLES`` past those two. Another candidate dropped too early costs a
    gain; a reference dropped too early could cost the guarantee.
    """
    timed = [i for i, s in enumerate(samples) if s and failures[i] is None]
    if len(timed) < 2:
        return set()
    medians = {i: statistics.median(settled(samples[i])) for i in timed}
    best = min(timed, key=medians.__getitem__)
    best_settled = len(samples[best]) >= SETTLED_SAMPLES

    best_upper = (statistics.quantiles(settled(samples[best]), n=4)[2]
                  if len(samples[best]) >= SEPARATED_SAMPLES else math.inf)

    def slower(i: int) -> bool:
        count, fastest = len(samples[i]), min(samples[i])
        warm = WARMING_SAMPLES if i in references else 0  # see settled()
        if count >= SEPARATED_SAMPLES and \
                statistics.quantiles(settled(samples[i]), n=4)[0] > best_upper:
            return True  # the interquartile ranges no longer overlap
        if count >= warm + SETTLED_SAMPLES and best_settled and \
                fastest > SETTLED_FACTOR * medians[best]:
            return True
        if count <= warm:
            return count >= 2 and fastest > max(factor, WARMING_DROP_FACTOR) * medians[best]
        return count >= 2 and fastest > factor * medians[best]

    return {i for i in timed if i != best and slower(i)}


def halved(samples: Sequence[Sequence[float]], failures: Sequence[str | None],
           dropped: Collection[int]) -> set[int]:
    """Successive halving: when the candidates still racing all reach a sample count of
    :data:`HALVING_AT` (6, 12, 24, ...), the slower half by median leaves the race (at least
    two stay). Near-ties that the clear-loss rule cannot separate would otherwise share the
    budget to its end; a candidate dropped here was already slower than half the field."""
    racing = [i for i, s in enumerate(samples) if s and failures[i] is None and i not in dropped]
    if len(racing) <= 2:
        return set()
    counts = {len(samples[i]) for i in racing}
    if len(counts) != 1 or not _halving_round(counts.pop()):
        return set()
    by_median = sorted(racing, key=lambda i: statistics.median(settled(samples[i])))
    return set(by_median[max(2, math.ceil(len(racing) / 2)):])


def _halving_round(count: int) -> bool:
    """Whether ``count`` samples is a halving point: HALVING_AT times a power of two."""
    rounds = count / HALVING_AT
    return rounds >= 1 and math.log2(rounds).is_integer()


def tied(samples: Sequence[Sequence[float]], racing: Sequence[int]) -> bool:
    """Whether the candidates still racing are tied: each has :data:`TIE_SAMPLES` samples and
    their medians (past the warming samples: :func:`settled`) are within
    :data:`TIED_FACTOR` of each other, so that picking any of them costs about that much at
    most and more samples would not pay for themselves."""
    if len(racing) < 2 or any(len(samples[i]) < TIE_SAMPLES for i in racing):
        return False
    medians = [statistics.median(settled(samples[i])) for i in racing]
    return max(medians) <= TIED_FACTOR * min(medians)


def is_reference(call: Callable[[], Any]) -> bool:
    """Whether a timed call is ``F.conv1d`` as called: the tuner's calls carry their
    candidate (``call.candidate``, as :class:`~autoconv.tuning.candidates.CandidateCall` does)."""
    candidate = getattr(call, "candidate", None)
    return bool(candidate is not None and getattr(candidate, "is_plain_conv1d", False))


#: Rounds at most, as a multiple of ``max_samples``: disturbed samples do not count towards
#: ``max_samples``, so a busy machine earns extra rounds, within the deadline.
ROUNDS_PER_SAMPLE = 3


def measure_interleaved(candidates: Sequence[Callable[[], Any]], *, device: torch.device,
                        deadline: float, max_samples: int = 25, min_samples: int = 1,
                        clock: Clock = time.perf_counter,
                        drop_factor: float | None = DROP_FACTOR,
                        load: MachineLoad | QuietMachine | None = None,
                        thread_clock: Clock | None = None) -> list[Timing]:
    """Time each candidate in rounds, each in a new shuffled order (:func:`round_orders`),
    until ``deadline`` or ``max_samples``.

    Each candidate is judged on the later half of its samples, the first half being its
    warming samples (:func:`settled`); ``F.conv1d`` as called (:func:`is_reference`) is
    dropped on its warming samples alone only when far slower. Candidates race
    (:func:`clearly_slower`): one whose times are clearly worse than the best's is not timed
    again, and timing stops as soon as a single candidate is left (and has
    ``SETTLED_SAMPLES``, so that its decision is not provisional) or those left are tied
    (:func:`tied`), so the budget goes to candidates too close to call. Every candidate still
    in the race gets at least ``min_samples`` samples (default one; a dropped one has at least
    two); a further round starts only if the previous round's duration still fits before the
    deadline, and within a round the deadline is checked before each sample, so under
    contention the deadline is overrun by at most the samples ``min_samples`` demands.

    On the CPU, the machine's load is read before and after each sample
    (:class:`~autoconv.tuning.contention.MachineLoad`): a sample with other work competing
    for the cores at both ends is *disturbed* (one end alone is a blip: on the quiet 2-core
    test machine 0-2% of samples read busy at both ends). Disturbed samples do not count
    towards ``max_samples``, nor in any racing rule: a candidate whose every sample was
    stalled has a stalled fastest sample too, and contention does not slow all candidates
    alike, so on a machine that stays busy nothing is dropped and every candidate is timed
    to the deadline, in as many rounds as the deadline allows (up to
    :data:`ROUNDS_PER_SAMPLE` times ``max_samples``): a burst of other work that passes
    leaves clean samples behind it. The timer never pauses to wait for one: on the test
    machine a pause let torch's worker threads fall asleep, and waking them on a busy
    machine made the next sub-millisecond call take 40 ms. At the end, a candidate with too
    few undisturbed samples is summarised on all of them, by their median, and marked
    contended (:func:`summarize_disturbed`).

    The callables are assumed warmed up (called once) by the caller. A candidate that raises
    gets ``median_s=inf`` and its message, and is not called again.

    Args:
        candidates: zero-argument callables, each one convolution (or forward + backward).
        device: where they run; CUDA timing uses events and synchronises.
        deadline: a ``clock()`` value after which no new round starts.
        max_samples: the most undisturbed timed calls per candidate.
        min_samples: the fewest, deadline or not (capped by ``max_samples``).
        clock: the wall clock (injectable for tests).
        drop_factor: the factor of :func:`clearly_slower` (None: no racing, every candidate
            is timed until the deadline or ``max_samples``).
        load: the machine's load (default: :class:`MachineLoad` on the CPU, none on CUDA,
            whose events time the device alone).
        thread_clock: the calling thread's CPU clock (:func:`thread_cpu_clock`), for
            candidates that run wholly on this thread (torch at one thread, on the CPU):
            each sample is then the CPU time its call took here, which waiting for a core
            does not count, so no sample is disturbed and the load is not read; the
            deadline stays on ``clock``.

    Returns:
        One :class:`Timing` per candidate, in order (a dropped candidate's from the samples
        it got).
    """
    if thread_clock is not None and device.type == "cpu":
        load = QuietMachine()  # waiting for a core is not on the thread's clock
    else:
        thread_clock = None
    if load is None:
        load = QuietMachine() if device.type == "cuda" else MachineLoad()
    load.reset_peak()
    stopwatch = thread_clock or clock
    references = {i for i, call in enumerate(candidates) if is_reference(call)}
    samples: list[list[float]] = [[] for _ in candidates]
    disturbed: list[list[float]] = [[] for _ in candidates]
    failures: list[str | None] = [None] * len(candidates)
    dropped: set[int] = set()

    def taken(index: int) -> int:
        return len(samples[index]) + len(disturbed[index])

    for _, order in zip(range(ROUNDS_PER_SAMPLE * max_samples), round_orders(len(candidates))):
        round_start = clock()
        busy_before = load.busy()
        for index in order:
            if failures[index] is not None or index in dropped:
                continue
            if len(samples[index]) >= max_samples:
                continue
            if taken(index) >= min_samples and clock() > deadline:
                continue  # checked between samples: a slow round under contention stops here
            try:
                took = time_call(candidates[index], device, stopwatch)
            except Exception as error:  # a failing candidate loses; it never aborts tuning
                failures[index] = f"{type(error).__name__}: {error}"
                continue
            busy_after = load.busy()
            if busy_before and busy_after:  # busy at both ends: a blip at one is no stall
                disturbed[index].append(took)
            else:
                samples[index].append(took)
            busy_before = busy_after
        if drop_factor is not None:  # on clean samples alone: a stalled minimum is no bound
            dropped |= clearly_slower(samples, failures, drop_factor, references)
            dropped |= halved(samples, failures, dropped)
        racing = [i for i in range(len(candidates)) if failures[i] is None and i not in dropped]
        done = min((taken(i) for i in racing), default=min_samples)
        full = all(len(samples[i]) >= max_samples for i in racing)
        # nothing left to decide: once the survivor's own time is settled (its few extra
        # samples are the cheapest of all), unless the deadline came first
        alone = drop_factor is not None and (not racing or tied(samples, racing) or (
            len(racing) == 1 and len(samples[racing[0]]) >= SETTLED_SAMPLES))
        if done >= min_samples and (alone or full or clock() > deadline
                                    or clock() + (clock() - round_start) > deadline):
            break
    return [Timing(float("inf"), 0.0, len(s) + len(d), failure)
            if failure is not None or not (s or d)
            else summarize_disturbed(settled(s), d, load.peak_excess)
            for s, d, failure in zip(samples, disturbed, failures)]
