"""Decisions re-checked on live calls: a stored winner that runs slower than it should is
decided again.

A decision is only as good as the measurement behind it, and a measurement taken on a busy
machine (or on another day) can be wrong. So the first calls of a decided signature, then
one call in ``recheck_every``, are timed as they run (:class:`LiveCheck`): alternately the
winner itself and, while that costs little, ``F.conv1d`` as called (whose output is returned
instead: it is the reference). When the winner's recent undisturbed times are clearly
slower than ``F.conv1d``'s, or, where ``F.conv1d`` costs too much to time on a live call,
than the time measured for it, the live times are written to
the tuning database as measurements (noted :data:`~tuning_db.records.CORRECTED_NOTE`) and
the signature is decided again on them (:meth:`autoconv.tuning.selector.Selector.correct`).
A decision the live calls confirm is checked less and less often (one call in
``recheck_every`` after the first window, the interval doubling after each later one).

The hot path pays a counter and a comparison; the timing itself happens on the sampled call
only, with the same contention test as tuning (:mod:`autoconv.tuning.contention`): a sample
taken while other work competed for the cores is dropped.

**Calls that record gradients.** A training decision was timed as the tuner times one, a
forward and its backward, and is re-checked the same way: a sampled call first times a
forward and backward of its strategy (or of ``F.conv1d``) on detached copies of the call's
own tensors (:func:`training_step`), then runs the call itself by the decision, untimed, in
the caller's graph. The caller's graph, its gradients and the hooks on its tensors never see
the timed step (under activation checkpointing it runs under saved-tensor hooks of its own:
:func:`autoconv.contexts.own_saved_tensors`); the sampled call costs about three more
forward calls.
"""

from __future__ import annotations

import functools
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable

import torch

from autoconv import plain
from autoconv.contexts import may_measure, own_saved_tensors
from autoconv.signature import Signature
from autoconv.tuning.candidates import Candidate
from autoconv.tuning.contention import MachineLoad, QuietMachine
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.timing import Clock
from tuning_db.records import CORRECTED_NOTE

logger = logging.getLogger(__name__)

#: Undisturbed live samples of the winner (and of ``F.conv1d``) a verdict needs.
WINDOW = 5
#: The winner is clearly slower than ``F.conv1d`` when its live median exceeds the
#: reference's by this factor (tuning already gives near-ties to ``F.conv1d``).
SLOWER_THAN_REFERENCE = 1.10
#: ... or clearly slower than its stored time by this factor (the stored time was wrong).
SLOWER_THAN_STORED = 1.5
#: ``F.conv1d`` is timed on live calls only while its times stay within this factor of the
#: winner's: a sampled call may cost that much more, never a long kernel's 100x.
REFERENCE_COST_LIMIT = 4.0
#: The longest interval between sampled calls, however often the decision was confirmed.
MAX_INTERVAL = 1 << 16

#: Called with the live outcomes (winner first, then ``F.conv1d`` when it was timed); returns
#: nothing: the owner decides again and forgets the call's runner.
Correct = Callable[[list[Outcome]], None]


def training_step(runner: Callable[..., torch.Tensor], input: torch.Tensor,
                  weight: torch.Tensor, bias: torch.Tensor | None, stride, padding, dilation,
                  groups) -> None:
    """One forward and backward of ``runner`` on detached copies of the call's tensors,
    every one of them asking for its gradient, as the tuner times a training call: outside
    the caller's graph and under saved-tensor hooks of its own, so that neither its
    gradients nor its hooks (activation checkpointing's) see it."""
    leaves = [t.detach().requires_grad_() for t in (input, weight, bias) if t is not None]
    x, w = leaves[0], leaves[1]
    b = leaves[2] if bias is not None else None
    with own_saved_tensors():  # out of sight of checkpointing's hooks
        output = runner(x, w, b, stride, padding, dilation, groups)
        torch.autograd.grad(output, leaves, torch.ones_like(output))


def _timed_step_ran(*call) -> bool:
    """:func:`training_step`, False when it raised (out of memory, say): then nothing is
    recorded and the call itself runs as it would have, and meets any error of its own."""
    try:
        training_step(*call)
    except Exception as error:  # noqa: BLE001 - the sample is lost, never the call
        logger.debug("autoconv: a live training sample failed: %s", error)
        return False
    return True


class LiveCheck:
    """The live re-check of one decided signature (see the module docstring).

    Args:
        signature: the signature (for messages).
        winner: the chosen candidate.
        reference: ``F.conv1d`` as called, as a candidate.
        stored_s: the winner's measured seconds per call; None when unknown or predicted.
        reference_s: ``F.conv1d``'s stored seconds, when it was timed.
        every: once the first window has confirmed the decision, sample one call in this
            many (doubling after each further confirming window). The first window samples
            consecutive calls, so that a wrong decision is caught within a few calls.
        correct: what to do when the winner is found slower.
        clock, load: the wall clock and the machine's load (injectable for tests).
    """

    def __init__(self, signature: Signature, winner: Candidate, reference: Candidate, *,
                 stored_s: float | None, reference_s: float | None,
                 every: int, correct: Correct, clock: Clock = time.perf_counter,
                 load: MachineLoad | QuietMachine | None = None) -> None:
        self.signature = signature
        #: a call that records gradients: timed as a forward and backward (module docstring)
        self.training = signature.requires_grad
        self.winner = winner
        self.reference = reference
        self.stored_s = stored_s
        self.reference_s = reference_s
        self.every = max(1, every)
        #: calls between sampled ones: 1 until the first window is judged, then ``every``
        self.interval = 1
        #: calls left until the next sampled one (decremented on the hot path)
        self.countdown = 1
        self.correct = correct
        self.clock = clock
        self.load = load if load is not None else MachineLoad()
        self._winner_run = functools.partial(winner.strategy.run, **dict(winner.params))
        self.winner_times: deque[float] = deque(maxlen=WINDOW)
        self.reference_times: deque[float] = deque(maxlen=WINDOW)
        self.disturbed = 0
        self.corrected = False
        self._time_reference_next = False
        self._lock = threading.Lock()

    # -- the sampled call ----------------------------------------------------------------

    def sampled(self, run: Callable[..., torch.Tensor], input: torch.Tensor,
                weight: torch.Tensor, bias: torch.Tensor | None, stride, padding, dilation,
                groups) -> torch.Tensor:
        """Run one real call timed: the winner as the call runs it (``run``: with the
        module's spectrum cache, say), or ``F.conv1d`` in its turn; return its output
        (either is the call's answer)."""
        self.countdown = self.interval
        if (self.corrected or not may_measure(input.device)
                or not self._lock.acquire(blocking=False)):
            # a transform (vmap batches the call), a trace, or another thread sampling
            return run(input, weight, bias, stride, padding, dilation, groups)
        try:
            reference = self._reference_turn()
            # a training step times the candidate itself, as the tuner timed it
            runner = (plain.conv1d if reference
                      else self._winner_run if self.training else run)
            busy_before = self.load.busy()
            start = self.clock()
            if self.training:
                if not _timed_step_ran(runner, input, weight, bias, stride, padding, dilation,
                                       groups):
                    return run(input, weight, bias, stride, padding, dilation, groups)
            else:
                output = runner(input, weight, bias, stride, padding, dilation, groups)
            took = self.clock() - start
            if busy_before and self.load.busy():
                self.disturbed += 1  # not evidence: the machine was busy at both ends
            else:
                (self.reference_times if reference else self.winner_times).append(took)
                self._judge()
            if self.training:  # the call itself, by the decision, in the caller's graph
                output = run(input, weight, bias, stride, padding, dilation, groups)
            return output
        finally:
            self._lock.release()

    def _reference_turn(self) -> bool:
        """Whether this sampled call times ``F.conv1d``: every other one, once the winner has
        half a window, while ``F.conv1d`` stays cheap enough to time on a live call."""
        turn = self._time_reference_next
        self._time_reference_next = not turn
        if not turn or len(self.winner_times) < (WINDOW + 1) // 2:
            return False
        return self._reference_affordable(statistics.median(self.winner_times))

    def _reference_affordable(self, winner_s: float) -> bool:
        """Whether ``F.conv1d`` may be timed on a live call: its time (live, else stored)
        within :data:`REFERENCE_COST_LIMIT` of the winner's, or unknown (one call tells)."""
        known = (statistics.median(self.reference_times) if self.reference_times
                 else self.reference_s)
        return known is None or known <= REFERENCE_COST_LIMIT * winner_s

    # -- the verdict ----------------------------------------------------------------------

    def _judge(self) -> None:
        if len(self.winner_times) < WINDOW:
            return
        winner_s = statistics.median(self.winner_times)
        reference_s = (statistics.median(self.reference_times)
                       if len(self.reference_times) >= WINDOW else None)
        why = None
        if reference_s is not None and winner_s > SLOWER_THAN_REFERENCE * reference_s:
            why = (f"{winner_s * 1e3:.3g} ms on live calls against F.conv1d's "
                   f"{reference_s * 1e3:.3g} ms")
        elif (self.stored_s is not None and winner_s > SLOWER_THAN_STORED * self.stored_s
              and not self._reference_affordable(winner_s)):
            # only when F.conv1d cannot be timed live: a live call runs on inputs fresh from
            # the layer before (out of cache) and, in a model's first passes, beside the
            # tuning of its other layers, so a memory-bound winner runs 2-3x its stored
            # time there (Conv-TasNet's shift-and-add layers: 1.26 ms live, 0.40 ms
            # stored, F.conv1d 1.4 ms); F.conv1d timed on the same live calls is the fair bar
            why = (f"{winner_s * 1e3:.3g} ms on live calls against "
                   f"{self.stored_s * 1e3:.3g} ms stored")
        if why is None:
            if reference_s is not None or not self._reference_affordable(winner_s):
                self._confirmed()  # else wait for F.conv1d's window
            return
        self.corrected = True
        logger.warning("autoconv: %s: %s runs %s: deciding again on the live timings",
                       self.signature.short(), self.winner.label, why)
        self.correct(self.live_outcomes(why))

    def _confirmed(self) -> None:
        """A window confirmed the decision: sample one call in ``every`` after the first
        window, half as often after each later one, afresh."""
        self.interval = (self.every if self.interval < self.every
                         else min(2 * self.interval, MAX_INTERVAL))
        self.countdown = self.interval
        self.winner_times.clear()
        self.reference_times.clear()

    def live_outcomes(self, why: str) -> list[Outcome]:
        """The live timings as outcomes to store: the winner's, then ``F.conv1d``'s when it
        has a whole window."""
        note = f"{CORRECTED_NOTE} {why}"
        outcomes = [Outcome.of_live_times(self.winner, self.winner_times, note)]
        if len(self.reference_times) >= WINDOW:  # fewer would replace a better-supported row
            outcomes.append(Outcome.of_live_times(self.reference, self.reference_times, note))
        return outcomes
