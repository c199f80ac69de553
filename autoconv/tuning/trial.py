"""The steps of one tuning run, each with one concern: the budget, the check against
``F.conv1d``, and the warm-up call that captures failures.

The selector (:meth:`autoconv.tuning.selector.Selector.tune`) strings them together: prune,
warm up what fits the budget (:func:`warm_up`), time what passed (its injected timer), and
turn all of it into :class:`~autoconv.tuning.outcome.Outcome` rows.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from autoconv.signature import Signature
from autoconv.tuning.candidates import (
    DEFAULT_TOLERANCE,
    REFERENCE_WINDOW,
    Candidate,
    CandidateCall,
    ConvInputs,
    Reference,
)
from autoconv.tuning.contention import MachineLoad, QuietMachine
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.timing import Clock, settle_allocator

#: Share of the budget spent on warm-ups and timing; the rest is kept for what follows the
#: last timing (storing, choosing).
TIMING_SHARE = 0.9


@dataclass
class Budget:
    """When one signature's tuning must stop, and how far the cost model can be trusted.

    Warm-up seconds over predicted seconds are collected as candidates run: when the cost
    model proves optimistic on this signature, later predictions are scaled up by its median
    error before they are compared with the time left (never down: the budget errs on the
    safe side).
    """

    clock: Clock
    deadline: float
    _ratios: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, clock: Clock, budget_s: float) -> Budget:
        """A budget of ``budget_s`` seconds from now."""
        return cls(clock, clock() + TIMING_SHARE * budget_s)

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once past it)."""
        return self.deadline - self.clock()

    def observe(self, predicted_s: float | None, took_s: float) -> None:
        """Note that a call predicted to take ``predicted_s`` took ``took_s``."""
        if predicted_s:
            self._ratios.append(took_s / predicted_s)

    def expected(self, predicted_s: float | None) -> float | None:
        """A prediction scaled by the cost model's median error so far (never down)."""
        if predicted_s is None:
            return None
        return predicted_s * (max(1.0, statistics.median(self._ratios)) if self._ratios else 1.0)

    def fits(self, predicted_s: float | None) -> bool:
        """Whether a call predicted at ``predicted_s`` is expected to end before the deadline
        (a call the cost model cannot judge fits while any time is left)."""
        expected, remaining = self.expected(predicted_s), self.remaining()
        return remaining > 0 if expected is None else expected <= remaining

    def fits_a_round(self, round_s: float) -> bool:
        """Whether one more round of calls taking ``round_s`` in all ends before the deadline."""
        return self.clock() + round_s <= self.deadline


class OutputCheck:
    """Each candidate's output against ``F.conv1d``'s, within a tolerance.

    The reference output is the first output of a reference candidate (``F.conv1d`` itself,
    which runs anyway) when one is to run first; otherwise ``F.conv1d`` on the first
    :data:`~autoconv.tuning.candidates.REFERENCE_WINDOW` outputs, computed up front (cheap
    even for a kernel too long to run in full), or the leading outputs a
    :func:`probe_reference` computed (:meth:`of_reference`).
    """

    def __init__(self, inputs: ConvInputs | None, tolerance: float, reference_runs: bool
                 ) -> None:
        self.tolerance = tolerance
        self.reference = None if reference_runs or inputs is None else Reference.of(
            inputs.reference(window=REFERENCE_WINDOW))

    @classmethod
    def of_reference(cls, output: torch.Tensor, tolerance: float) -> OutputCheck:
        """A check against ``output``: ``F.conv1d``'s leading outputs (or all of them)."""
        check = cls(None, tolerance, reference_runs=True)
        check.reference = Reference.of(output)
        return check

    @staticmethod
    def tolerance_for(signature: Signature, tolerance: float | None) -> float:
        """The tolerance to use: ``tolerance`` when set, else the default of the dtype."""
        return tolerance or DEFAULT_TOLERANCE.get(signature.dtype, 1e-4)

    def error(self, candidate: Candidate, output) -> float | None:
        """The candidate's error relative to the reference (None before there is one)."""
        if self.reference is None and candidate.strategy.reference:
            self.reference = Reference.of(output)
        return self.reference.error(output) if self.reference is not None else None

    def passes(self, error: float | None) -> bool:
        """Whether an error is within the tolerance (an unchecked output passes; NaN fails)."""
        return error is None or error <= self.tolerance


@functools.cache
def _first_autograd_grad() -> None:
    """Pay, once per process and outside any timing, what the first ``torch.autograd.grad``
    with explicit output gradients costs: it imports torch's symbolic-shapes machinery (sympy
    included), most of a second, which would otherwise be charged to the first candidate
    timed with gradients (and make it look many times slower than it is)."""
    leaf = torch.zeros(1, requires_grad=True)
    output = leaf * 2
    torch.autograd.grad(output, leaf, torch.ones_like(output))


@dataclass(frozen=True)
class WarmedUp:
    """A candidate that ran once, correctly: ready to be timed.

    Attributes:
        call: what the timer calls.
        error: its checked error (None if unchecked).
        warm_up_s: how long its warm-up call took.
    """

    call: CandidateCall
    error: float | None
    warm_up_s: float


#: During warm-up, a candidate expected (its prediction times what its strategy's warm-ups
#: took over their predictions) to be this many times slower than the fastest warm-up so far
#: is not run: warm-up calls carry one-time costs, hence the wider margin than the race's.
WARM_UP_DROP_FACTOR = 2.0


def warm_up(survivors: Sequence[tuple[Candidate, float | None]], inputs: ConvInputs,
            budget: Budget, check: OutputCheck,
            drop_factor: float | None = WARM_UP_DROP_FACTOR,
            thread_clock: Clock | None = None) -> tuple[list[WarmedUp], list[Outcome]]:
    """Call each candidate once, in order, while the budget allows, and check its output.

    The first candidate always runs, and so does the first after ``F.conv1d`` as called
    (which runs first): a later one is skipped when it is not expected to fit
    in what is left of the budget, or (racing, unless ``drop_factor`` is None) when it is
    expected to be ``drop_factor`` times slower than the fastest warm-up so far: the earlier
    warm-ups of its kind (its strategy up to size parameters, :meth:`Strategy.kind`) tell how
    far the cost model is off for that kind on this signature (the other block sizes of an
    overlap-add that proved slow are not tried; padding first is judged on its own). A
    candidate that raises or fails the check becomes an ``ok=False`` outcome (it never aborts
    tuning).

    Args:
        survivors: candidates with their predicted seconds, fastest predicted first.
        thread_clock: the calling thread's CPU clock, when candidates are timed on it
            (:func:`~autoconv.tuning.timing.measure_interleaved`): the warm-up times that
            rank candidates (``warm_up_s``, the racing rule) are then taken on it too; the
            budget is always spent on the wall clock.

    Returns:
        (the candidates ready to be timed, the outcomes of those that failed).
    """
    warmed: list[WarmedUp] = []
    rejected: list[Outcome] = []
    #: per kind of candidate (a strategy up to its size parameters: padding first is another
    #: kind of direct call), the smallest warm-up seconds over predicted seconds
    ratios: dict[tuple, float] = {}
    stopwatch = thread_clock or budget.clock
    settle_allocator()
    if inputs.signature.requires_grad:
        _first_autograd_grad()
    for candidate, predicted in survivors:
        # F.conv1d as called, warmed up first, never takes the rivals' turn: until one other
        # candidate has run, the budget skips nothing (a reference that ate the budget would
        # otherwise win alone, as a 3.5 s reverb F.conv1d did against a 1.5 ms overlap-add)
        rival = any(not w.call.candidate.is_plain_conv1d for w in warmed) or (
            warmed and all(c.is_plain_conv1d for c, _ in survivors))
        if rival and budget.remaining() <= 0:
            break
        if rival and not budget.fits(predicted):
            continue  # would overrun the budget, and something valid is already in hand
        kind = candidate.strategy.kind(dict(candidate.params))
        ratio = ratios.get(kind)
        if (drop_factor is not None and rival and predicted and ratio is not None
                and predicted * ratio > drop_factor * min(w.warm_up_s for w in warmed)):
            continue  # its strategy proved clearly slower here: not worth a call
        if not prepared(candidate, inputs, budget, bool(warmed), rejected):
            continue
        call = CandidateCall(candidate, inputs)
        start = budget.clock()
        try:
            call.prime()  # a layer's one-time work (its kept spectra): not the call's time
            start, thread_start = budget.clock(), stopwatch()
            output = call()
        except Exception as error:
            rejected.append(Outcome.failed(candidate, budget.clock() - start,
                                           f"{type(error).__name__}: {error}"))
            continue
        budget.observe(predicted, budget.clock() - start)
        took = stopwatch() - thread_start
        if predicted:
            ratios[kind] = min(took / predicted, ratios.get(kind, math.inf))
        error = check.error(candidate, output)
        if not check.passes(error):
            rejected.append(Outcome.disqualified(candidate, took, error, check.tolerance))
            continue
        warmed.append(WarmedUp(call, error, took))
    return warmed, rejected


def prepared(candidate: Candidate, inputs: ConvInputs, budget: Budget, fallback: bool,
             rejected: list[Outcome]) -> bool:
    """Whether ``candidate`` is ready for its warm-up call: its strategy's one-time
    preparation (:attr:`Strategy.preparation`: compiling a kernel) done here, on the
    budget's clock and not on the candidate's time. Skipped (False) when its estimate does
    not fit in what is left of the budget and a ``fallback`` (any candidate, ``F.conv1d``
    included) is in hand: unlike a call, a compile has no bound, and it would stall the
    call that tunes; a preparation that raises adds a failed outcome to ``rejected``
    (False)."""
    preparation = candidate.strategy.preparation
    if preparation is None:
        return True
    params = dict(candidate.params)
    if fallback and preparation.estimate_s(inputs.signature, params) > budget.remaining():
        return False
    start = budget.clock()
    try:
        preparation(inputs.signature, params, inputs.input, inputs.weight, inputs.bias)
    except Exception as error:
        rejected.append(Outcome.failed(candidate, budget.clock() - start,
                                       f"{type(error).__name__}: {error}"))
        return False
    return True


#: ``F.conv1d`` estimated to take more than this share of the budget left is not run in
#: full: its estimate stands for it (:meth:`Outcome.estimated`) ...
REFERENCE_SHARE = 0.5
#: ... or this many times the budget left, when the machine was busy while it was probed (a
#: stall can make a short window take many times its time: only a call expected to
#: outlast the whole budget left is left out).
BUSY_REFERENCE_SHARE = 1.0
#: The reference probe's windows grow by up to this factor ...
PROBE_GROWTH = 8
#: ... while one window is expected to take at most this share of what is left of the budget.
PROBE_SHARE = 0.1


@dataclass(frozen=True)
class ReferenceProbe:
    """``F.conv1d`` as called, run on a growing prefix of the tuning inputs' outputs.

    Attributes:
        output: its leading outputs (all of them when the window reached the whole call).
        estimate_s: seconds the whole call takes: measured when the window is whole, else
            the largest window's time scaled to the whole output length.
        whole: whether the window was the whole call.
        disturbed: whether other work competed for the cores at both ends of the last window.
        thread_estimate_s: the same estimate on the calling thread's CPU clock, when the
            probe was given one (None otherwise): what stands for the call among
            candidates timed on that clock.
    """

    output: torch.Tensor
    estimate_s: float
    whole: bool
    disturbed: bool = False
    thread_estimate_s: float | None = None

    @property
    def ranked_s(self) -> float:
        """The estimate to rank the call by among the candidates: on the clock they are
        timed on (:attr:`thread_estimate_s` when there is one, else :attr:`estimate_s`)."""
        return self.estimate_s if self.thread_estimate_s is None else self.thread_estimate_s

    def too_long_for(self, budget: Budget) -> bool:
        """Whether the whole call is expected to take over :data:`REFERENCE_SHARE` of what
        is left of ``budget`` (:data:`BUSY_REFERENCE_SHARE` times it, when the probe was
        disturbed): then it is not run in full."""
        share = BUSY_REFERENCE_SHARE if self.disturbed else REFERENCE_SHARE
        return not self.whole and self.estimate_s > share * budget.remaining()


def probe_reference(inputs: ConvInputs, budget: Budget,
                    load: MachineLoad | QuietMachine | None = None,
                    thread_clock: Clock | None = None) -> ReferenceProbe:
    """Time ``F.conv1d`` as called (its own padding argument) on windows of its outputs, 64
    first, each up to :data:`PROBE_GROWTH` times the last, until the window is the whole
    call or one more would take over :data:`PROBE_SHARE` of the budget left: this device's
    own estimate of what the call costs, which decides whether it can be timed at all.

    Neither the cost model nor a small window of an input padded beforehand can tell: on the
    2-core test machine the calibrated cost model put a 2x1x96000, K=8191 ``F.conv1d`` with
    padding 8190 at 0.17 s and a 30,000-output window of the pre-padded input at 0.3 s (it
    takes 3.4-4.7 s: oneDNN takes a slow path for a long padding), and a 64-output window put
    a WaveNet layer that takes 17 ms at 1.1 s. A window of the call as made, grown until it
    takes a tenth of the budget, is on the call's own path.
    The probe costs at most a little more than its last window (the earlier ones shrink
    geometrically); a call that fits whole costs one extra run of ``F.conv1d``. ``load``
    (default: none read) tells whether the machine was busy at both ends of the last window;
    ``thread_clock`` (the calling thread's CPU clock, when candidates are timed on it) also
    gives :attr:`ReferenceProbe.thread_estimate_s`.
    """
    signature = inputs.signature
    length = signature.output_length
    # a call that needs gradients also runs the backward pass, about twice the forward
    passes = 3 if signature.requires_grad else 1
    window = min(REFERENCE_WINDOW, length)
    load = load or QuietMachine()
    while True:
        busy_before = load.busy()
        start, thread_start = budget.clock(), thread_clock() if thread_clock else 0.0
        output, computed = inputs.leading_as_called(window)
        took = budget.clock() - start
        thread_took = thread_clock() - thread_start if thread_clock else None
        disturbed = busy_before and load.busy()
        scale = passes * length / max(computed, 1)
        probe = functools.partial(
            ReferenceProbe, output, took * scale, disturbed=disturbed,
            thread_estimate_s=None if thread_took is None else thread_took * scale)
        if output.shape[-1] >= length:
            return probe(whole=True)
        allowed = PROBE_SHARE * budget.remaining()
        growth = min(PROBE_GROWTH, allowed / took if took > 0 else PROBE_GROWTH)
        if growth < 2:
            return probe(whole=False)
        window = min(length, max(output.shape[-1] + 1, int(window * growth)))


def reference_first(survivors: Sequence[tuple[Candidate, float | None]]
                    ) -> list[tuple[Candidate, float | None]]:
    """The candidates in warm-up order with ``F.conv1d`` as called moved first, so that every
    measured decision times the reference it must beat, whatever the cost model thinks of
    it (:func:`probe_reference` decides whether it can be timed at all)."""
    plain = [pair for pair in survivors if pair[0].is_plain_conv1d]
    others = [pair for pair in survivors if not pair[0].is_plain_conv1d]
    return [*plain[:1], *others]
