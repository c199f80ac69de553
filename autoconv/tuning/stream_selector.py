"""The stream selector: memory -> tuning database -> measure (mode ``tune``) -> prior.

The counterpart of :class:`~autoconv.tuning.selector.Selector` for streams (signatures with a
``chunk_size``, see :mod:`autoconv.streaming`): the same settings (mode, ``budget_s``,
samples, racing, tie margin, tolerance, ``prior_gain``), the same timer
(:func:`~autoconv.tuning.timing.measure_interleaved`), the same store and lease, the same
check of stored rows (:func:`~autoconv.tuning.stored.stored_outcomes`) and the same tie rule
(:func:`~autoconv.tuning.outcome.tie_winner`), over the streaming strategies. Everything is
injected, so its logic is tested with fakes.

Without measurements (mode ``predict``, or a context where nothing may be timed) the prior
decides: a strategy replaces stateful direct only when it needs ``prior_gain`` times fewer
floating-point operations per chunk.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from autoconv.choice import StreamChoice
from autoconv.settings import Settings
from autoconv.settings import settings as global_settings
from autoconv.signature import Signature
from autoconv.strategies.streaming import (
    StreamStrategy,
    all_stream_strategies,
    stream_reference,
)
from autoconv.tuning.candidates import Candidate, enumerate_candidates
from autoconv.tuning.leasing import tune_under_lease
from autoconv.tuning.memory import DecisionMemory
from autoconv.tuning.outcome import Outcome, tie_winner
from autoconv.tuning.protocols import ChoiceStore
from autoconv.tuning.stored import stored_outcomes
from autoconv.tuning.stream_trial import StreamBench, cycle_of, warm_up_streams
from autoconv.tuning.timing import Clock, Timer, Timing, measure_interleaved
from autoconv.tuning.trial import Budget, OutputCheck

logger = logging.getLogger(__name__)


def _per_chunk(choice: StreamChoice) -> str:
    """A stream choice's time of one chunk, for the log."""
    return f"{choice.median_s * 1e6:.3g} us a chunk" if choice.median_s else "-"


class StreamSelector(DecisionMemory[StreamChoice]):
    """Chooses, remembers and (in mode ``tune``) measures the streaming strategy of each
    stream signature on each device. Thread-safe, as the selector is."""

    def __init__(self, *, strategies: Sequence[StreamStrategy] | None = None,
                 timer: Timer = measure_interleaved, clock: Clock = time.perf_counter,
                 store: ChoiceStore | None = None, settings: Settings | None = None) -> None:
        self._strategies = list(strategies) if strategies is not None else None
        self.timer = timer
        self.clock = clock
        self.store = store
        self.settings = settings or global_settings
        super().__init__()

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
        if not self.settings.persist or getattr(self.store, "lease", None) is None:
            return self.tune(signature, device, candidates)

        def from_database() -> StreamChoice | None:
            rows = self._stored_outcomes(signature, device)
            return self.pick_winner(rows, source="database") if rows else None

        return tune_under_lease(self.store, signature, device, self.settings.budget_s,
                                tune=lambda: self.tune(signature, device, candidates),
                                from_database=from_database,
                                fallback=lambda: self.prior(signature, candidates))

    def _stored_outcomes(self, signature: Signature, device: torch.device) -> list[Outcome]:
        if self.store is None:
            return []
        try:
            rows = self.store.candidates(signature, device)
        except Exception as error:  # a broken database must not break the user's stream
            warnings.warn(f"autoconv: tuning database lookup failed, deciding without it: "
                          f"{error}", RuntimeWarning, stacklevel=4)
            return []
        return stored_outcomes(signature, rows, self.strategies)

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
        sample, and charged the time of one chunk.
        """
        budget = Budget.of(self.clock, self.settings.budget_s)
        ordered = sorted(candidates, key=lambda c: c.strategy.flops(signature, dict(c.params)))
        cycle = cycle_of(signature, ordered)
        bench = StreamBench.random(signature, device, cycle)
        tolerance = OutputCheck.tolerance_for(signature, self.settings.tolerance)
        warmed, outcomes = warm_up_streams(
            ordered, bench, budget, tolerance,
            **({} if self.settings.race else {"drop_factor": None}))
        if warmed:
            settings = self.settings
            min_samples = min(settings.min_samples, settings.max_samples)
            if min_samples > 1 or budget.fits_a_round(sum(w.warm_up_s for w in warmed)):
                no_race: dict[str, Any] = {} if settings.race else {"drop_factor": None}
                timings = self.timer([w.call for w in warmed], device=device,
                                     deadline=budget.deadline,
                                     max_samples=settings.max_samples,
                                     min_samples=min_samples, **no_race)
            else:
                timings = [Timing(w.warm_up_s, 0.0, 1) for w in warmed]
            for w, timing in zip(warmed, timings):
                candidate = w.call.candidate
                if timing.ok and math.isfinite(timing.median_s) and timing.samples:
                    per_chunk = dataclasses.replace(timing, median_s=timing.median_s / cycle,
                                                    spread_s=timing.spread_s / cycle)
                    outcomes.append(Outcome.timed(candidate, per_chunk, w.error))
                else:
                    outcomes.append(Outcome.failed(candidate, w.warm_up_s / cycle,
                                                   str(timing.failure), w.error))
        self._record(signature, device, outcomes)
        return self.pick_winner(outcomes)

    def pick_winner(self, outcomes: Sequence[Outcome], source: str = "measured"
                    ) -> StreamChoice:
        """The tie rule's pick among ``outcomes`` (the reference when none is valid)."""
        best = tie_winner(outcomes, [s.name for s in self.strategies], self.settings.tie_margin)
        if best is None:
            return StreamChoice.make(self.reference(), source="fallback")
        return StreamChoice.make(best.candidate.strategy,  # type: ignore[arg-type]
                                 dict(best.candidate.params), source=source,  # type: ignore
                                 median_s=best.median_s)

    def _record(self, signature: Signature, device: torch.device,
                outcomes: Sequence[Outcome]) -> None:
        if self.store is None or not self.settings.persist or not outcomes:
            return
        try:
            self.store.record(signature, device, outcomes)
        except Exception as error:
            warnings.warn(f"autoconv: could not store stream measurements, keeping them in "
                          f"memory only: {error}", RuntimeWarning, stacklevel=4)
