"""Exploration of a stream on its live chunks (mode ``live``): answer at once, measure the
rivals beside the chunks that follow, then hand over to the winner without a gap.

The counterpart of :mod:`autoconv.tuning.exploration` for streams, on the same core
(:class:`~autoconv.tuning.exploration.Exploration`: the arms, the allowance, the call
factor, racing, disturbed samples, the outcomes it stores). What differs is what a stream is:

* **The answer always runs.** A stream's engine holds the signal's past, so no other engine
  can compute a chunk in its place. A rival runs as a *shadow*: its own engine, fed the same
  chunks, its output thrown away. Everything a rival costs is extra, and the allowance
  (``explore_overhead`` of the answer's time over the chunks so far) pays for all of it;
  a chunk with a shadow is expected to take at most ``explore_call_factor`` times the
  answer's.
* **A sample is a cycle.** A partitioned engine spreads its work over a period of chunks, so
  one sample is a cycle of consecutive full chunks (the longer of the two engines'
  periods), its time divided by its chunks; the answer is timed on the same cycle, so the
  two are compared under the same conditions. A cycle with a partial chunk gives no sample.
* **The check.** A rival's engine is new on its first cycle: it starts from silence, so its
  last output of that cycle is checked against ``F.conv1d`` on the cycle's chunks (the
  stream's own weight and signal, as for calls).
* **The handover.** When the tie rule picks a rival, a fresh engine of it is fed every chunk
  beside the answer until it has seen the ``dilation * (K - 1)`` samples each output
  depends on: from then on its outputs are the stream's own. They are compared with the
  answer's on that chunk, and the stream runs the winner from the next chunk (a reset hands
  over at once: both engines start from silence). A chunk during the handover costs the
  answer plus the winner, for ``history`` samples (and the stream's latency).

The database, the tie rule and the decision's provenance are the stream selector's
(:meth:`~autoconv.tuning.selector_core.SelectorCore.adopt`, notes ``live:``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from autoconv.choice import StreamChoice
from autoconv.signature import Signature
from autoconv.strategies.streaming import StreamEngine
from autoconv.tuning.candidates import Candidate, Reference
from autoconv.tuning.contention import MachineLoad, QuietMachine
from autoconv.tuning.exploration import Arm, Exploration
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.stream_trial import last_outputs
from autoconv.tuning.timing import Clock

#: Builds a fresh engine of a candidate, for the stream's weight, batch and chunk size.
EngineFactory = Callable[[Candidate], StreamEngine]
#: Stores the live outcomes and returns the new decision (None: nothing to store).
StreamSettle = Callable[[list[Outcome]], StreamChoice | None]


@dataclass
class _Cycle:
    """One cycle of consecutive chunks: the answer timed, a rival's shadow beside it."""

    length: int
    arm: Arm | None
    engine: StreamEngine | None
    busy_before: bool
    left: int = 0
    answer_s: float = 0.0
    arm_s: float = 0.0
    partial: bool = False
    chunks: list[torch.Tensor] = field(default_factory=list)
    last: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.left = self.length


@dataclass
class _Handover:
    """The winner's engine, fed beside the answer until it has seen ``history`` samples."""

    choice: StreamChoice
    engine: StreamEngine
    fed: int = 0


class StreamExploration(Exploration):
    """The exploration of one stream signature on its live chunks (see the module
    docstring). The stream hands every chunk to :meth:`step` while it is under way; once
    :attr:`replacement` is set the stream runs that engine and choice instead, and drops
    the exploration.

    Args:
        signature: the stream's signature.
        answer: the strategy the stream runs now.
        arms: the candidates to explore with their operations per chunk (the prior's
            measure; turned into seconds by the answer's first cycle), the answer among
            them.
        build: a fresh engine of a candidate.
        period: chunks per period of a candidate's work.
        weight, bias, dilation, groups: the stream's convolution (for the check).
        settle, overhead, call_factor, tolerance, clock, load: as for
            :class:`~autoconv.tuning.exploration.Exploration`.
    """

    def __init__(self, signature: Signature, answer: Candidate,
                 arms: Sequence[tuple[Candidate, float | None]], *, build: EngineFactory,
                 period: Callable[[Candidate], int], weight: torch.Tensor,
                 bias: torch.Tensor | None, dilation: int, groups: int,
                 settle: StreamSettle, overhead: float, call_factor: float, tolerance: float,
                 clock: Clock = time.perf_counter,
                 load: MachineLoad | QuietMachine | None = None) -> None:
        super().__init__(signature, answer, [(c, flops, build) for c, flops in arms],
                         settle=settle, overhead=overhead, call_factor=call_factor,
                         tolerance=tolerance, clock=clock, load=load)
        self.build = build
        self.period = period
        self.weight, self.bias = weight, bias
        self.dilation, self.groups = dilation, groups
        #: samples an output depends on besides its own (its latency included)
        self.history = signature.padding_left
        self._stream_settle = settle
        self._cycle: _Cycle | None = None
        self._priced = False
        self._handover: _Handover | None = None
        self._engines: dict[Candidate, StreamEngine] = {}  # the rivals' shadows
        #: set once the winner took over: (its engine, its choice)
        self.replacement: tuple[StreamEngine, StreamChoice] | None = None
        #: the decision the live outcomes gave (None before, or with nothing to store)
        self.decision: StreamChoice | None = None

    @property
    def under_way(self) -> bool:
        """Whether the stream must still hand its chunks to :meth:`step` (exploring, or
        handing over to the winner)."""
        return not self.finished or self._handover is not None

    # -- the stream's chunk ----------------------------------------------------------------

    def step(self, engine: StreamEngine, chunk: torch.Tensor,
             out: torch.Tensor | None) -> torch.Tensor:
        """The stream's chunk through its engine (the output it returns), and beside it
        whatever exploration or the handover does on this chunk."""
        if self._handover is not None:
            return self._hand_over(engine, chunk, out)
        if self.finished:
            return engine.step(chunk, out)
        self.calls += 1
        cycle = self._cycle
        if cycle is None:
            self.countdown -= 1
            if self.countdown > 0:
                return engine.step(chunk, out)
            cycle = self._cycle = self._begin_cycle()
            if cycle is None:
                return engine.step(chunk, out)
        start = self.clock()
        result = engine.step(chunk, out)
        cycle.answer_s += self.clock() - start
        cycle.partial |= chunk.shape[-1] != self.signature.length
        if cycle.engine is not None:
            self._shadow(cycle, chunk)
        cycle.left -= 1
        if cycle.left <= 0 or (cycle.arm is not None and cycle.engine is None):
            self._cycle = None
            self._end_cycle(cycle)
        return result

    def reset(self) -> None:
        """The stream starts a new signal: a cycle under way gives no sample, and a
        handover completes at once (both engines start from silence)."""
        self._cycle = None
        handover = self._handover
        if handover is not None:
            handover.engine.reset()
            self.replacement = (handover.engine, handover.choice)
            self._handover = None

    # -- cycles ----------------------------------------------------------------------------

    def _begin_cycle(self) -> _Cycle | None:
        """The next cycle: the answer alone until it has a time (the rivals are priced
        from it), then a rival's shadow beside it when the allowance covers one; None
        (and chunks skipped while the allowance grows) otherwise."""
        answer_period = self.period(self.answer.candidate)
        arm = self._pick_rival() if self._priced else None
        if arm is None:
            if not self.answer.done:  # timing the answer alone costs nothing
                return _Cycle(answer_period, None, None, self.load.busy())
            self._wait_for_allowance()
            return None
        engine = self._engines.get(arm.candidate)
        if engine is None:
            try:
                engine = self._engines[arm.candidate] = self.build(arm.candidate)
            except Exception as error:  # a rival that cannot even be built loses
                arm.outcome = Outcome.failed(arm.candidate, 0.0,
                                             f"{type(error).__name__}: {error}")
                return None
        length = max(answer_period, self.period(arm.candidate))
        return _Cycle(length, arm, engine, self.load.busy())

    def _shadow(self, cycle: _Cycle, chunk: torch.Tensor) -> None:
        arm = cycle.arm
        if arm is not None and arm.first_s is None:
            cycle.chunks.append(chunk.clone())
        start = self.clock()
        try:
            cycle.last = cycle.engine.step(chunk)  # type: ignore[union-attr]
        except Exception as error:  # a rival that raises loses; the stream never sees it
            cycle.arm_s += self.clock() - start
            arm.outcome = Outcome.failed(arm.candidate, cycle.arm_s,  # type: ignore[union-attr]
                                         f"{type(error).__name__}: {error}")
            cycle.engine = None
            self._engines.pop(arm.candidate, None)  # type: ignore[union-attr]
            return
        cycle.arm_s += self.clock() - start

    def _end_cycle(self, cycle: _Cycle) -> None:
        busy = cycle.busy_before and self.load.busy()
        chunks = cycle.length - cycle.left
        arm = cycle.arm
        self.extra_s += cycle.arm_s
        if not cycle.partial and chunks == cycle.length:
            self._answer_sample(cycle.answer_s / chunks, busy)
        if arm is None or arm.outcome is not None:
            self._after_cycle()
            return
        per_chunk = cycle.arm_s / max(chunks, 1)
        if arm.first_s is None:  # its warm-up, and its check
            arm.first_s = per_chunk
            self._check_shadow(arm, cycle)
        elif not cycle.partial:
            (arm.disturbed if busy else arm.times).append(per_chunk)
        self._race()
        self._after_cycle()

    def _answer_sample(self, per_chunk: float, busy: bool) -> None:
        answer = self.answer
        if not self._priced:
            self._price_rivals(per_chunk)
        if not answer.done:
            (answer.disturbed if busy else answer.times).append(per_chunk)

    def _price_rivals(self, answer_s: float) -> None:
        """Operations per chunk into seconds, at the answer's measured rate."""
        self._priced = True
        flops = self.answer.predicted_s
        for arm in self.arms:  # unknown without the answer's count: never explored
            arm.predicted_s = (arm.predicted_s / flops * answer_s
                               if arm.predicted_s is not None and flops else None)
        self.answer.predicted_s = answer_s

    def _check_shadow(self, arm: Arm, cycle: _Cycle) -> None:
        """A new engine's last output of its first cycle against ``F.conv1d`` on the cycle's
        chunks (from silence, as the engine started)."""
        start = self.clock()
        signal = torch.cat(cycle.chunks, dim=-1)
        reference = last_outputs(signal, self.weight, self.bias, self.signature,
                                 cycle.chunks[-1].shape[-1])
        error = Reference.of(reference).error(cycle.last)  # type: ignore[arg-type]
        self.extra_s += self.clock() - start
        if math.isnan(error) or error > self.tolerance:
            arm.outcome = Outcome.disqualified(arm.candidate, arm.first_s or 0.0, error,
                                               self.tolerance)

    def _after_cycle(self) -> None:
        for arm in self.arms:
            if arm.done:
                self._engines.pop(arm.candidate, None)  # the shadow's memory back
        if self._priced and all(arm.done for arm in self.arms):
            self._finish()

    # -- pricing a shadow -------------------------------------------------------------------

    def _leave_out(self, arm: Arm, expected: float) -> None:
        """A rival too slow to shadow is simply not a candidate."""
        arm.dropped = True

    def _too_slow(self, expected: float, answer_s: float) -> bool:
        """A chunk with a shadow runs the answer and the rival."""
        return answer_s + expected > self.call_factor * answer_s

    def _extra_cost(self, arm: Arm, expected: float, answer_s: float) -> float:
        """A rival's whole cycle is extra (the answer runs anyway); the answer's is not."""
        if arm is self.answer:
            return 0.0
        return expected * max(self.period(self.answer.candidate), self.period(arm.candidate))

    # -- the decision ------------------------------------------------------------------------

    def _finish(self) -> None:
        self.finished = True
        self._engines.clear()
        choice = self.decision = self._stream_settle(self.outcomes())
        if choice is None or Candidate(choice.strategy_impl, choice.params) \
                == self.answer.candidate:
            return
        try:
            engine = self.build(Candidate(choice.strategy_impl, choice.params))
        except Exception:  # the winner cannot be built now: the stream keeps its answer
            return
        self._handover = _Handover(choice, engine)

    def _hand_over(self, engine: StreamEngine, chunk: torch.Tensor,
                   out: torch.Tensor | None) -> torch.Tensor:
        """A chunk of the handover: the answer's output, the winner fed beside it; once the
        winner has seen ``history`` samples its output is compared with the answer's, and
        the stream runs it from the next chunk (or keeps its answer if they differ)."""
        handover = self._handover
        result = engine.step(chunk, out)
        try:
            theirs = handover.engine.step(chunk)  # type: ignore[union-attr]
        except Exception:
            self._handover = None
            return result
        exact = handover.fed >= self.history  # type: ignore[union-attr]
        handover.fed += chunk.shape[-1]  # type: ignore[union-attr]
        if exact:
            self._handover = None
            error = Reference.of(result).error(theirs)
            if not math.isnan(error) and error <= self.tolerance:
                self.replacement = (handover.engine, handover.choice)  # type: ignore
        return result

