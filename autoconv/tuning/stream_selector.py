"""The stream selector: memory -> tuning database -> measure (mode ``tune``) -> prior.

The counterpart of :class:`~autoconv.tuning.selector.Selector` for streams (signatures with a
``chunk_size``, see :mod:`autoconv.streaming`), on the same core
(:class:`~autoconv.tuning.selector_core.SelectorCore`: stored outcomes, recording, the lease,
timings into outcomes, the tie rule's pick): the same settings (mode, ``budget_s``,
samples, racing, tie margin, tolerance, ``prior_gain``), the same timer
(:func:`~autoconv.tuning.timing.measure_interleaved`), the same store and lease, the same
check of stored rows (:func:`~autoconv.tuning.stored.stored_outcomes`) and the same tie rule
(:func:`~autoconv.tuning.outcome.tie_winner`), over the streaming strategies. Everything is
injected, so its logic is tested with fakes.

Without measurements (modes ``predict`` and ``live``, or a context where nothing may be
timed) the prior decides: a strategy replaces stateful direct only when it needs
``prior_gain`` times fewer floating-point operations per chunk. In mode ``live`` the stream
then explores its rivals on its own chunks (:meth:`StreamSelector.exploration`,
:mod:`autoconv.tuning.stream_exploration`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch

from autoconv.choice import StreamChoice
from autoconv.settings import Settings
from autoconv.signature import Signature
from autoconv.strategies.streaming import (
    StreamStrategy,
    all_stream_strategies,
    stream_reference,
)
from autoconv.tuning.candidates import Candidate, enumerate_candidates
from autoconv.tuning.contention import MachineLoad, QuietMachine
from autoconv.tuning.exploration import EXPLORE_FACTOR, MAX_RIVALS
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.protocols import ChoiceStore
from autoconv.tuning.selector_core import SelectorCore
from autoconv.tuning.stream_exploration import EngineFactory, StreamExploration
from autoconv.tuning.stream_trial import StreamBench, cycle_of, warm_up_streams
from autoconv.tuning.timing import Clock, Timer, measure_interleaved
from autoconv.tuning.trial import Budget, OutputCheck

logger = logging.getLogger(__name__)


def _per_chunk(choice: StreamChoice) -> str:
    """A stream choice's time of one chunk, for the log."""
    return f"{choice.median_s * 1e6:.3g} us a chunk" if choice.median_s else "-"


class StreamSelector(SelectorCore[StreamChoice]):
    """Chooses, remembers and (in mode ``tune``) measures the streaming strategy of each
    stream signature on each device. Thread-safe, as the selector is."""

    def __init__(self, *, strategies: Sequence[StreamStrategy] | None = None,
                 timer: Timer = measure_interleaved, clock: Clock = time.perf_counter,
                 store: ChoiceStore | None = None, settings: Settings | None = None,
                 load: MachineLoad | QuietMachine | None = None) -> None:
        super().__init__(timer=timer, clock=clock, store=store, settings=settings, load=load)
        self._strategies = list(strategies) if strategies is not None else None

    @property
    def strategies(self) -> list[StreamStrategy]:
        return self._strategies if self._strategies is not None else all_stream_strategies()

    def reference(self) -> StreamStrategy:
        """The strategy that runs ``F.conv1d`` (the first reference offered, else the
        registry's)."""
        return next((s for s in self.strategies if s.reference), None) or stream_reference()

    def choose(self, signature: Signature, device: torch.device) -> StreamChoice:
        """The streaming strategy for ``signature`` on ``device``, measuring it first in mode
        ``tune`` (within ``budget_s``).

        Raises:
            ValueError: ``signature`` is not a stream's (no ``chunk_size``).
        """
        if signature.chunk_size is None:
            raise ValueError(f"{signature} is not a stream's signature (no chunk_size)")
        mode = self.settings.mode
        if mode == "off":
            return StreamChoice.make(self.reference(), source="off")
        return self._recall_or_decide(signature, device, settled=("measured", "database"),
                                      timed=_per_chunk, log=logger)

    # -- the slow path --------------------------------------------------------------------

    def _lookup_or_decide(self, signature: Signature, device: torch.device,
                          measurable: bool) -> StreamChoice:
        stored = self._stored_outcomes(signature, device)
        if stored:
            return self.pick_winner(stored, source="database")
        candidates = enumerate_candidates(self.strategies, signature)
        if not measurable:
            return self.prior(signature, candidates)
        return self._under_lease(signature, device,
                                 tune=lambda: self.tune(signature, device, candidates),
                                 fallback=lambda: self.prior(signature, candidates))

    def prior(self, signature: Signature, candidates: Sequence[Candidate]) -> StreamChoice:
        """Without measurements: the candidate with the fewest operations per chunk, if it
        needs ``prior_gain`` times fewer than the reference; else the reference."""
        flops = [(c.strategy.flops(signature, dict(c.params)), c) for c in candidates]
        if not flops:
            return StreamChoice.make(self.reference(), source="fallback")
        best_flops, best = min(flops, key=lambda fc: fc[0])
        plain = [f for f, c in flops if c.strategy.reference]
        if plain and plain[0] < self.settings.prior_gain * best_flops:
            return StreamChoice.make(self.reference(), source="cost_model")
        return StreamChoice.make(best.strategy, dict(best.params),  # type: ignore[arg-type]
                                 source="cost_model")

    def tune(self, signature: Signature, device: torch.device,
             candidates: Sequence[Candidate]) -> StreamChoice:
        """Measure ``candidates`` on a random stream, record every outcome, return the winner.

        Within ``budget_s``: the candidates, fewest operations first, build their engine and
        stream one cycle of chunks from silence, checked against ``F.conv1d``
        (:func:`~autoconv.tuning.stream_trial.warm_up_streams`: one whose first chunk is
        clearly slow stops there); those that passed are timed interleaved, a cycle per
        sample, and charged the time of one chunk. While other work holds the cores, they
        are measured at one torch thread on the thread's CPU clock, and the decision is
        provisional (:meth:`SelectorCore._busy_aware`).
        """
        def measure(thread_clock: Clock | None) -> list[Outcome]:
            budget = Budget.of(self.clock, self.settings.budget_s)
            ordered = sorted(candidates,
                             key=lambda c: c.strategy.flops(signature, dict(c.params)))
            cycle = cycle_of(signature, ordered)
            bench = StreamBench.random(signature, device, cycle)
            tolerance = OutputCheck.tolerance_for(signature, self.settings.tolerance)
            warmed, outcomes = warm_up_streams(
                ordered, bench, budget, tolerance, thread_clock=thread_clock,
                **({} if self.settings.race else {"drop_factor": None}))
            return outcomes + self._timed_outcomes(warmed, device, budget, per_call=cycle,
                                                   thread_clock=thread_clock)

        outcomes = self._busy_aware(device, measure)
        self._record(signature, device, outcomes)
        return self.pick_winner(outcomes)

    # -- mode live ------------------------------------------------------------------------

    def explorable(self, signature: Signature, answer: Candidate
                   ) -> list[tuple[Candidate, float | None]]:
        """What a stream explores on its chunks, with each candidate's operations per chunk:
        the ``answer``, and the rivals within
        :data:`~autoconv.tuning.exploration.EXPLORE_FACTOR` of the fewest operations (at
        most :data:`~autoconv.tuning.exploration.MAX_RIVALS`, fewest first)."""
        flops = {c: c.strategy.flops(signature, dict(c.params))
                 for c in enumerate_candidates(self.strategies, signature)}
        if answer not in flops:
            flops[answer] = answer.strategy.flops(signature, dict(answer.params))
        limit = EXPLORE_FACTOR * min(flops.values())
        rivals = sorted(((c, f) for c, f in flops.items() if c != answer and f <= limit),
                        key=lambda cf: cf[1])[:MAX_RIVALS]
        return [(answer, flops[answer]), *rivals]

    def exploration(self, signature: Signature, device: torch.device, choice: StreamChoice,
                    *, build: EngineFactory, weight: torch.Tensor, bias: torch.Tensor | None,
                    dilation: int, groups: int, clock: Clock = time.perf_counter,
                    load: MachineLoad | QuietMachine | None = None
                    ) -> StreamExploration | None:
        """Mode ``live``: the exploration of a stream answered without a measurement (on
        the CPU), whose outcomes this selector adopts; None otherwise."""
        if (self.settings.mode != "live" or device.type != "cpu"
                or choice.origin in ("measured", "database", "corrected")):
            return None
        answer = Candidate(choice.strategy_impl, choice.params)  # type: ignore[arg-type]
        arms = self.explorable(signature, answer)
        if len(arms) < 2:
            return None

        def settle(outcomes: list[Outcome]) -> StreamChoice | None:
            return self.adopt(signature, device, outcomes) if outcomes else None

        return StreamExploration(
            signature, answer, arms, build=build,
            period=lambda c: c.strategy.period(signature, dict(c.params)),
            weight=weight, bias=bias, dilation=dilation, groups=groups, settle=settle,
            overhead=self.settings.explore_overhead,
            call_factor=self.settings.explore_call_factor,
            tolerance=OutputCheck.tolerance_for(signature, self.settings.tolerance),
            clock=clock, load=load)

    def make_choice(self, outcome: Outcome, source: str) -> StreamChoice:
        return StreamChoice.make(outcome.candidate.strategy,  # type: ignore[arg-type]
                                 dict(outcome.candidate.params), source=source,
                                 median_s=outcome.median_s)

    def fallback_choice(self) -> StreamChoice:
        return StreamChoice.make(self.reference(), source="fallback")
