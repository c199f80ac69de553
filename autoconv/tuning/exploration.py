"""Exploration on live calls (mode ``live``): answer at once, measure on the calls that follow.

In mode ``live`` a signature with no measured decision is answered at once, as in mode
``predict`` (the database, a confident prediction, the safe prior): the first call never
waits. From its second call on, the signature's calls are the measurements
(:class:`Exploration`): each sampled call runs one *arm* (the current answer, ``F.conv1d`` as
called, or a candidate the cost model puts within :data:`EXPLORE_FACTOR` of the best
predicted), timed as it runs, and returns that arm's output. An arm runs on a real call only
after its output was checked against ``F.conv1d`` on that call's own leading outputs (the
window check tuning uses, cheap even for a kernel too long to run): the first call an arm
runs on is its check (and its warm-up, not a sample); an arm that fails it is disqualified,
and ``F.conv1d`` answers that call.

Bounds, on expectations (the cost model's predictions, scaled by how far off it proved on
this signature, then the arms' own live times):

* exploration adds at most ``explore_overhead`` (a fraction) to the time the signature's
  calls would have taken with the current answer: what an arm costs beyond the answer is
  paid from an allowance that grows with every call (an arm faster than the answer pays
  into it); when it is spent, calls run the answer untouched until it has grown back;
* no explored call is expected to take more than ``explore_call_factor`` times the current
  answer: an arm expected slower is never run (``F.conv1d`` of a long kernel then stands in
  as the estimate its window check gives, so nothing slower than it can win).

An arm is done after :data:`SAMPLES` undisturbed samples, or once it is clearly slower than
the best arm (racing). When all are, the live outcomes are stored as measurements (noted
:data:`LIVE_NOTE`, with the number of calls), the tie rule picks the winner, and the
signature runs it from then on (the live re-check watches it as any measured decision).
Samples taken while other work competed for the cores are kept apart, as tuning does; an
arm that gathers only those is judged on them and the decision is provisional.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from autoconv import plain
from autoconv.contexts import may_measure
from autoconv.signature import Signature
from autoconv.tuning.candidates import REFERENCE_WINDOW, Candidate, ConvInputs, Reference
from autoconv.tuning.contention import MachineLoad, QuietMachine
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.timing import Clock
from tuning_db.records import CONTENDED_NOTE

Runner = Callable[..., torch.Tensor]
#: Called with the live outcomes once exploration has decided (the owner stores them, picks
#: the winner and forgets the call's runner).
Settle = Callable[[list[Outcome]], None]

#: Candidates the cost model puts within this factor of the best predicted are explored ...
EXPLORE_FACTOR = 3.0
#: ... at most this many besides the current answer and ``F.conv1d`` as called.
MAX_RIVALS = 3
#: Undisturbed live samples that make an arm's time.
SAMPLES = 5
#: A rival whose fastest sample exceeds the best arm's median by this factor is done ...
RACE_DROP = 1.5
#: ... and so is one whose first call (its warm-up) exceeds it by this factor.
WARM_UP_DROP = 2.0
#: An arm with this many times :data:`SAMPLES` disturbed samples and too few clean ones is
#: judged on the disturbed ones (a provisional decision).
DISTURBED_LIMIT = 3
#: The note stored with live measurements.
LIVE_NOTE = "live:"


@dataclass
class Arm:
    """One candidate explored on live calls.

    Attributes:
        candidate: the strategy and parameters.
        predicted_s: the cost model's seconds (None: unknown).
        run: how it runs a call (the answer's runner may use a module's spectrum cache).
        first_s: its first live call's seconds (its check and warm-up, not a sample).
        window_s: ``F.conv1d`` only: its time scaled from the check's windows of it.
        times, disturbed: its undisturbed and disturbed live seconds.
        outcome: set once it failed, was disqualified, or stands as an estimate.
    """

    candidate: Candidate
    predicted_s: float | None
    run: Runner
    first_s: float | None = None
    window_s: float | None = None
    times: list[float] = field(default_factory=list)
    disturbed: list[float] = field(default_factory=list)
    outcome: Outcome | None = None
    dropped: bool = False

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.times) if len(self.times) >= 2 else None

    @property
    def done(self) -> bool:
        return (self.outcome is not None or self.dropped or len(self.times) >= SAMPLES
                or len(self.disturbed) >= DISTURBED_LIMIT * SAMPLES)


class Exploration:
    """The exploration of one signature on its live calls (see the module docstring).

    The hot path (``autoconv.conv1d``) treats it as it treats a live re-check: it decrements
    :attr:`countdown` and hands the call to :meth:`sampled` when it reaches zero.

    Args:
        signature: the call's signature.
        answer: the current answer (what the call ran before exploration).
        arms: the candidates to explore with their predicted seconds and runners; the answer
            and ``F.conv1d`` as called among them.
        settle: what to do with the outcomes once decided.
        overhead: most extra time, as a fraction of the calls' time with the answer.
        call_factor: most expected time of one explored call over the answer's.
        tolerance: the check's largest relative error.
        clock, load: the wall clock and the machine's load (injectable for tests).
    """

    def __init__(self, signature: Signature, answer: Candidate,
                 arms: Sequence[tuple[Candidate, float | None, Runner]], *, settle: Settle,
                 overhead: float, call_factor: float, tolerance: float,
                 clock: Clock = time.perf_counter,
                 load: MachineLoad | QuietMachine | None = None) -> None:
        self.signature = signature
        # the answer first: it is checked on the first explored call, before any rival runs
        # (a rival that fails its check hands the call to the answer)
        ordered = sorted(arms, key=lambda arm: arm[0] != answer)
        self.arms = [Arm(candidate, predicted, run) for candidate, predicted, run in ordered]
        self.answer = self.arms[0]
        if self.answer.candidate != answer:
            raise ValueError(f"the answer {answer.label} is not among the arms")
        self.settle = settle
        self.overhead = overhead
        self.call_factor = call_factor
        self.tolerance = tolerance
        self.clock = clock
        self.load = load if load is not None else MachineLoad()
        #: calls left until the next sampled one: the first call is never explored on
        self.countdown = 2
        self._interval = 1
        #: the signature's calls so far (those since the last sampled one counted on it)
        self.calls = 1
        #: seconds explored calls cost beyond the answer's (negative: they saved time)
        self.extra_s = 0.0
        self.finished = False
        self._next = 0
        self._answer_ran_last = False
        self._lock = threading.Lock()

    # -- the sampled call ----------------------------------------------------------------

    def sampled(self, run: Runner, input: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None, stride, padding, dilation, groups) -> torch.Tensor:
        """Run one real call: an arm's turn (timed, checked first), or the answer as usual
        when the allowance is spent; return the call's output."""
        self.calls += self._interval
        self.countdown = self._interval = 1
        args = (input, weight, bias, stride, padding, dilation, groups)
        if (self.finished or not may_measure(input.device)
                or not self._lock.acquire(blocking=False)):
            return run(*args)
        try:
            self.answer.run = run  # the answer as this call runs it (a module's cache)
            arm = self._pick()
            if arm is None:
                self._wait_for_allowance()
                return run(*args)
            output = self._explore(arm, args)
            if not self.finished and all(a.done for a in self.arms):
                self._finish()
            return output
        finally:
            self._lock.release()

    def _explore(self, arm: Arm, args: tuple) -> torch.Tensor:
        busy_before = self.load.busy()
        answer_s = self._answer_s()
        start = self.clock()
        try:
            if arm.first_s is None and self._keeps_spectra(arm):
                # a layer's one-time work (its weight's spectra, then kept), done once
                # before its first call is timed: paid from the allowance, not its time
                arm.run(*args)
                self.extra_s += self.clock() - start
                start = self.clock()
            output = arm.run(*args)
        except Exception as error:
            if arm is self.answer:
                raise  # the call's own strategy: the dispatcher recovers, as for any call
            arm.outcome = Outcome.failed(arm.candidate, self.clock() - start,
                                         f"{type(error).__name__}: {error}")
            return self.answer.run(*args)
        took = self.clock() - start
        if arm.first_s is None:  # its warm-up, and (but for F.conv1d itself) its check
            arm.first_s = took
            self.extra_s += took - answer_s
            self._race()
            return output if arm.candidate.is_plain_conv1d else self._check(arm, output, args)
        self.extra_s += took - answer_s
        (arm.disturbed if busy_before and self.load.busy() else arm.times).append(took)
        self._race()
        return output

    def _keeps_spectra(self, arm: Arm) -> bool:
        """Whether ``arm`` runs a layer's call keeping its weight's spectra across calls
        (:attr:`Signature.weight_reused`, a strategy that takes a spectrum cache)."""
        return self.signature.weight_reused and arm.candidate.strategy.takes_spectrum_cache

    def _check(self, arm: Arm, output: torch.Tensor, args: tuple) -> torch.Tensor:
        """An arm's output on its first call against ``F.conv1d`` on the call's leading
        outputs (timed too: a window of ``F.conv1d`` as called tells what it costs here)."""
        input, weight, bias = args[:3]
        inputs = ConvInputs(input, weight, bias, self.signature)
        start = self.clock()
        window, computed = inputs.leading_as_called(REFERENCE_WINDOW)
        window_s = self.clock() - start
        self.extra_s += window_s
        reference = self._reference()
        if reference is not None and computed > 0:
            reference.window_s = window_s * self.signature.output_length / computed
        error = Reference.of(window).error(output)
        if math.isnan(error) or error > self.tolerance:
            arm.outcome = Outcome.disqualified(arm.candidate, arm.first_s or 0.0, error,
                                               self.tolerance)
            if arm is self.answer:  # the answer itself is wrong: decide now, without it
                self._finish()
                return plain.conv1d(*args)
            return self.answer.run(*args)  # checked already: it runs first
        return output

    # -- which arm runs -------------------------------------------------------------------

    def _pick(self) -> Arm | None:
        """The arm this call runs: a rival whose expected cost fits the bounds (round
        robin), alternating with the answer while the answer needs samples (timing it costs
        nothing beyond the call); None when neither can run now."""
        answer_waits = not self.answer.done
        if answer_waits and not self._answer_ran_last:
            self._answer_ran_last = True
            return self.answer
        self._answer_ran_last = False
        rival = self._pick_rival()
        if rival is None and answer_waits:
            self._answer_ran_last = True
            return self.answer
        return rival

    def _pick_rival(self) -> Arm | None:
        """The next rival (round robin) whose expected cost fits the bounds, else None."""
        answer_s = self._answer_s()
        allowance = self.overhead * answer_s * self.calls - self.extra_s
        waiting = [arm for arm in self.arms if not arm.done and arm is not self.answer]
        for step in range(len(waiting)):
            arm = waiting[(self._next + step) % len(waiting)]
            expected = self._expected_s(arm)
            if expected is None:
                continue
            if self._too_slow(expected, answer_s):
                self._leave_out(arm, expected)
                continue
            # a first call carries one-time costs (an FFT plan, a kernel's set-up): it is
            # run once the allowance covers it at the warm-up's usual premium
            cost = expected * (WARM_UP_DROP if arm.first_s is None else 1.0)
            if self._extra_cost(arm, cost, answer_s) <= allowance:
                self._next = (self._next + step + 1) % len(waiting)
                return arm
        return None

    def _too_slow(self, expected: float, answer_s: float) -> bool:
        """Whether a call running an arm expected to take ``expected`` seconds would exceed
        ``call_factor`` times the answer's (here the arm runs instead of the answer)."""
        return expected > self.call_factor * answer_s

    def _extra_cost(self, arm: Arm, expected: float, answer_s: float) -> float:
        """What one run of ``arm`` costs beyond the answer's call (it replaces it)."""
        return expected - answer_s

    def _leave_out(self, arm: Arm, expected: float) -> None:
        """An arm too slow to run on a live call: ``F.conv1d`` stands as its estimate (so
        that nothing slower wins); any other arm is simply not a candidate."""
        if arm.candidate.is_plain_conv1d:
            how = ("one live call" if arm.first_s is not None
                   else f"{REFERENCE_WINDOW}-output windows of live calls")
            arm.outcome = Outcome.estimated(arm.candidate, expected, how)
        else:
            arm.dropped = True

    def _wait_for_allowance(self) -> None:
        """Skip the calls the allowance needs to pay for the cheapest waiting arm."""
        answer_s = self._answer_s()
        costs = [(arm, self._expected_s(arm)) for arm in self.arms if not arm.done]
        needed = min((self._extra_cost(arm, c, answer_s) for arm, c in costs if c is not None),
                     default=0.0)
        per_call = self.overhead * answer_s
        deficit = needed - (per_call * self.calls - self.extra_s)
        calls = math.ceil(deficit / per_call) if per_call > 0 and deficit > 0 else 1
        self.countdown = self._interval = max(1, min(calls, 1 << 16))
        if not any(c is not None for _, c in costs):
            self._finish()  # nothing more can be judged

    def _finish(self) -> None:
        self.finished = True
        self.settle(self.outcomes())

    def _answer_s(self) -> float:
        expected = self._expected_s(self.answer)
        return expected if expected is not None else 0.0

    def _expected_s(self, arm: Arm) -> float | None:
        """What a call of ``arm`` is expected to take: its live median, else its first live
        call, else its prediction scaled by how far the cost model proved off for its kind
        (its strategy up to size parameters, as tuning's warm-up judges it: the other block
        sizes of an overlap-add whose first call was slow are expected slow too), else on
        this signature (never down); for ``F.conv1d``, the lesser of that and its windows'
        estimate (it is left out only when both put it beyond the call factor)."""
        if arm.times:
            return statistics.median(arm.times)
        if arm.first_s is not None:
            return arm.first_s
        if arm.disturbed:
            return statistics.median(arm.disturbed)
        guesses = [arm.window_s] if arm.window_s is not None else []
        if arm.predicted_s is not None:
            guesses.append(arm.predicted_s * self._model_error(arm))
        return min(guesses) if guesses else None

    def _model_error(self, arm: Arm) -> float:
        """Live seconds over predicted ones: the least among arms of ``arm``'s kind that ran,
        else the median among all arms timed (at least 1)."""
        def ratio(other: Arm) -> float | None:
            live = statistics.median(other.times) if other.times else other.first_s
            return live / other.predicted_s if live and other.predicted_s else None

        kind = arm.candidate.strategy.kind(dict(arm.candidate.params))
        same_kind = [r for other in self.arms if other is not arm
                     and other.candidate.strategy.kind(dict(other.candidate.params)) == kind
                     and (r := ratio(other)) is not None]
        if same_kind:
            return max(1.0, min(same_kind))
        timed = [r for other in self.arms if other.times and (r := ratio(other)) is not None]
        return max(1.0, statistics.median(timed)) if timed else 1.0

    def _reference(self) -> Arm | None:
        return next((arm for arm in self.arms if arm.candidate.is_plain_conv1d), None)

    def _race(self) -> None:
        """Rivals clearly slower than the best arm so far are done: a first call (a warm-up,
        with its one-time costs) over :data:`WARM_UP_DROP` times the best median (but
        ``F.conv1d``'s: it gets a sample, the bar a winner must beat), or a sample over
        :data:`RACE_DROP` times it."""
        medians = [statistics.median(arm.times) for arm in self.arms if arm.times]
        if not medians:
            return
        best = min(medians)
        for arm in self.arms:
            if arm.done or arm is self.answer:
                continue
            if arm.times:
                arm.dropped = min(arm.times) > RACE_DROP * best
            elif not arm.candidate.is_plain_conv1d:  # F.conv1d, the bar, gets a sample
                arm.dropped = arm.first_s is not None and arm.first_s > WARM_UP_DROP * best

    # -- the decision ---------------------------------------------------------------------

    def outcomes(self) -> list[Outcome]:
        """What the live calls showed, as outcomes to store (arms never timed left out)."""
        outcomes = []
        for arm in self.arms:
            if arm.outcome is not None:
                outcomes.append(arm.outcome)
                continue
            times, contended = (arm.times, False) if arm.times else (arm.disturbed, True)
            if not times:
                continue
            note = (f"{CONTENDED_NOTE} {len(arm.disturbed)} live calls disturbed"
                    if contended else f"{LIVE_NOTE} timed on {len(times)} live calls")
            outcomes.append(Outcome.of_live_times(arm.candidate, times, note))
        return outcomes
