"""The selector: memory -> tuning database -> predictor/cost model -> measure.

This is the only module that composes strategies, timing, the database and the predictor.
Everything it depends on is injected (strategies, timer, clock, store, cost model, predictor),
so its logic is tested with fakes: no GPU, no wall-clock assertions.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Sequence

import torch

from autoconv.buckets import decision_key
from autoconv.choice import PLAIN_CONV1D, Choice
from autoconv.settings import Settings
from autoconv.signature import Signature
from autoconv.strategies import Strategy, all_strategies
from autoconv.strategies import reference as reference_strategy
from autoconv.tuning.candidates import Candidate, ConvInputs, enumerate_candidates
from autoconv.tuning.contention import MachineLoad, QuietMachine
from autoconv.tuning.exploration import EXPLORE_FACTOR, MAX_RIVALS
from autoconv.tuning.outcome import Outcome, tie_winner
from autoconv.tuning.protocols import ChoiceStore, CostModel, Predictor
from autoconv.tuning.selector_core import SelectorCore
from autoconv.tuning.timing import Clock, Timer, measure_interleaved
from autoconv.tuning.trial import (
    Budget,
    OutputCheck,
    probe_reference,
    reference_first,
    warm_up,
)

logger = logging.getLogger(__name__)

#: Cost-model predictions remembered, at most (the memory is cleared beyond).
PREDICTIONS_KEPT = 100_000


def _timed(choice: Choice) -> str:
    """A choice's time, saying whether it was measured or predicted."""
    if not choice.median_s:
        return "no time"
    kind = ("measured" if choice.source in ("measured", "database", "corrected")
            else "predicted")
    return f"{choice.median_s * 1e3:.3g} ms {kind}"


class Selector(SelectorCore[Choice]):
    """Chooses, remembers and (in mode ``tune``) measures the strategy for each signature.

    Thread-safe: two threads that hit the same untuned signature tune it once; the second
    waits and then finds the answer in memory.
    """

    def __init__(self, *, strategies: Sequence[Strategy] | None = None,
                 timer: Timer = measure_interleaved, clock: Clock = time.perf_counter,
                 store: ChoiceStore | None = None, cost_model: CostModel | None = None,
                 predictor: Predictor | None = None, settings: Settings | None = None,
                 revisit: Callable[[Sequence[Outcome]], bool] | None = None,
                 load: MachineLoad | QuietMachine | None = None) -> None:
        super().__init__(timer=timer, clock=clock, store=store, settings=settings, load=load)
        self._strategies = list(strategies) if strategies is not None else None
        self.cost_model = cost_model
        self.predictor = predictor
        #: stored outcomes of a signature for which this is true are measured again when
        #: measuring is allowed (``autoconv warm``: provisional decisions, or all of them);
        #: by default, a decision taken on a busy machine, once this one is quiet
        self.revisit = revisit
        #: the cost model's answers, per (signature, candidate, device, torch threads)
        self._predictions: dict[tuple[Signature, Candidate, torch.device, int],
                                float | None] = {}
        self._predicted_by: CostModel | None = cost_model
        #: candidates that raised when they ran a call, per (signature, device): never again
        self._failed: dict[tuple[Signature, torch.device], set[Candidate]] = {}

    @property
    def strategies(self) -> list[Strategy]:
        return self._strategies if self._strategies is not None else all_strategies()

    # -- the public entry points ------------------------------------------------------------

    def key_signature(self, signature: Signature) -> Signature:
        """The signature decisions are stored under (length bucketed when enabled)."""
        return decision_key(signature, self.settings)

    def choose(self, signature: Signature, device: torch.device) -> Choice:
        """The strategy for ``signature`` on ``device``, measuring it first in mode ``tune``."""
        mode = self.settings.mode
        if mode == "off":
            return PLAIN_CONV1D
        if signature.is_degenerate:  # nothing to compute, nothing to tune or store
            return Choice.make(reference_strategy(), source="fallback")
        # In mode tune, an answer given only because nothing could be measured here (or
        # another process was still measuring it) is not kept: a later call decides again.
        return self._recall_or_decide(self.key_signature(signature), device,
                                      settled=("measured", "database", "predicted"),
                                      timed=_timed, log=logger)

    def discard(self, signature: Signature, device: torch.device) -> Choice | None:
        """Forget the choice for ``signature`` on ``device`` because it raised when it ran a
        call: it is never chosen again in this process, and the next call decides anew.

        Returns:
            The discarded choice (None if none was remembered).
        """
        key = (self.key_signature(signature), device)
        with self._lock_for(key):
            choice = self._memory.pop(key, None)
            if choice is not None:
                self._failed.setdefault(key, set()).add(
                    Candidate(choice.strategy_impl, choice.params))
        return choice

    def forget(self, signature: Signature, device: torch.device) -> None:
        """Forget the remembered choice of ``signature`` on ``device``: the next call decides
        again (the database first), e.g. once a measured answer replaces a prediction."""
        key = (self.key_signature(signature), device)
        with self._lock_for(key):
            self._memory.pop(key, None)

    def correct(self, signature: Signature, device: torch.device,
                live: Sequence[Outcome]) -> Choice:
        """Decide ``signature`` again because live calls timed its winner clearly slower
        (:mod:`autoconv.tuning.live_check`): the live outcomes replace the stored ones of
        their candidates, are written to the database (where they replace the rows they
        correct, for every process that shares it), and the tie rule picks again.

        Returns:
            The new choice (source ``"corrected"``), remembered for the signature.
        """
        return self.adopt(signature, device, live, source="corrected")

    def explorable(self, signature: Signature, device: torch.device, answer: Candidate
                   ) -> list[tuple[Candidate, float | None]]:
        """Mode ``live``: what to explore on ``signature``'s live calls, with the cost model's
        seconds: the current ``answer``, ``F.conv1d`` as called, and the rivals predicted
        within :data:`~autoconv.tuning.exploration.EXPLORE_FACTOR` of the best (at most
        :data:`~autoconv.tuning.exploration.MAX_RIVALS`, fastest predicted first)."""
        failed = self._failed.get((self.key_signature(signature), device), set())
        candidates = [c for c in enumerate_candidates(self.strategies, signature)
                      if (c not in failed and c.strategy.is_ready(signature, dict(c.params)))
                      or c == answer]
        predicted = dict(zip(candidates, self._predicted_times(signature, candidates, device)))
        known = [t for t in predicted.values() if t is not None]
        limit = EXPLORE_FACTOR * min(known) if known else math.inf
        rivals = sorted(((c, t) for c, t in predicted.items()
                         if t is not None and t <= limit and c != answer
                         and not c.is_plain_conv1d), key=lambda ct: ct[1])[:MAX_RIVALS]
        reference = Candidate(reference_strategy(), ())
        arms = [(answer, predicted.get(answer))]
        if answer != reference:
            arms.append((reference, predicted.get(reference)))
        return arms + rivals

    # -- the slow path --------------------------------------------------------------------

    def _lookup_or_decide(self, signature: Signature, device: torch.device,
                          measurable: bool) -> Choice:
        stored = self._stored_outcomes(signature, device)
        if stored and not (measurable and self._measure_again(stored)):
            return self.pick_winner(stored, source="database")
        failed = self._failed.get((signature, device), set())
        candidates = [c for c in enumerate_candidates(self.strategies, signature)
                      if c not in failed]
        if measurable:
            confident = self._confident_prediction(signature, device, candidates)
            if confident is not None:
                return confident
            return self._tune_once(signature, device, candidates)
        return self._predict(signature, device, candidates)

    def _tune_once(self, signature: Signature, device: torch.device,
                   candidates: Sequence[Candidate]) -> Choice:
        """Tune under the store's lease (:meth:`SelectorCore._under_lease`); answer without
        measuring this once (not remembered: a later call decides again) when another
        process held it and its measurements did not come within the budget."""
        return self._under_lease(
            signature, device, tune=lambda: self.tune(signature, device, candidates),
            fallback=lambda: self._predict(signature, device, candidates))

    def _confident_prediction(self, signature: Signature, device: torch.device,
                              candidates: Sequence[Candidate]) -> Choice | None:
        """In mode ``tune``: a prediction sure enough to skip measuring, else None."""
        if self.predictor is None:
            return None
        prediction = self.predictor.decide(signature, candidates, device)
        return prediction.choice if prediction is not None and prediction.confident else None

    def stored(self, signature: Signature, device: torch.device) -> list[Outcome]:
        """The stored outcomes of ``signature`` on ``device`` that may be chosen here (rows
        checked by their strategies; none when there is no database or it fails)."""
        return self._stored_outcomes(self.key_signature(signature), device)

    def _measure_again(self, stored: Sequence[Outcome]) -> bool:
        """Whether stored outcomes are measured again, in mode tune: as ``revisit`` says, and
        by default when their decision was taken on a busy machine (its winner, or
        ``F.conv1d``, contended) and this machine is quiet now."""
        if self.revisit is not None:
            return self.revisit(stored)
        winner = tie_winner(stored, [strategy.name for strategy in self.strategies],
                            self.settings.tie_margin)
        contended = winner is not None and (winner.contended or any(
            o.contended and o.candidate.is_plain_conv1d for o in stored))
        return contended and not self.load.busy()

    def _stored_outcomes(self, signature: Signature, device: torch.device,
                         excluded: Collection[Candidate] = ()) -> list[Outcome]:
        """The stored outcomes that may be chosen, less the candidates that failed here."""
        failed = self._failed.get((signature, device), set())
        return super()._stored_outcomes(signature, device, {*excluded, *failed})

    def _predict(self, signature: Signature, device: torch.device,
                 candidates: Sequence[Candidate]) -> Choice:
        # an answer given without measuring is given at once: never one that must compile
        candidates = [c for c in candidates if c.strategy.is_ready(signature, dict(c.params))]
        if self.predictor is not None:
            prediction = self.predictor.decide(signature, candidates, device)
            if prediction is not None:
                return prediction.choice
        predicted_times = self._predicted_times(signature, candidates, device)
        known = [(t, c) for t, c in zip(predicted_times, candidates) if t is not None]
        if not known:
            return Choice.make(reference_strategy(), source="fallback")
        best_time, best = min(known, key=lambda tc: tc[0])
        # The safe prior: the cost model alone leaves F.conv1d only for a large predicted
        # gain (its worst errors on the suite are optimistic ones of about 30x, at predicted
        # gains under 3x: scripts/bench_prior.py).
        plain = [(t, c) for t, c in known if c.is_plain_conv1d]
        if plain and plain[0][0] < self.settings.prior_gain * best_time:
            best_time, best = plain[0]
        return Choice.make(best.strategy, dict(best.params), source="cost_model",
                           median_s=best_time)

    def _predicted_times(self, signature: Signature, candidates: Sequence[Candidate],
                         device: torch.device) -> list[float | None]:
        """The cost model's seconds for each candidate (remembered: a signature is asked
        about when it is answered and again when it is explored or tuned)."""
        if self.cost_model is None:
            return [None] * len(candidates)
        if len(self._predictions) > PREDICTIONS_KEPT or self._predicted_by is not self.cost_model:
            self._predictions.clear()
            self._predicted_by = self.cost_model
        threads = torch.get_num_threads()  # a CPU's calibration is per thread count
        times = []
        for c in candidates:
            key = (signature, c, device, threads)
            if key not in self._predictions:
                self._predictions[key] = self.cost_model.predict(signature, c.strategy,
                                                                 dict(c.params), device)
            times.append(self._predictions[key])
        return times

    def prune(self, signature: Signature, candidates: Sequence[Candidate],
              device: torch.device) -> list[tuple[Candidate, float | None]]:
        """Candidates worth timing, fastest predicted first, with their predicted seconds.

        Those predicted to be more than ``prune_factor`` times slower than the predicted best
        are dropped (never run), except ``F.conv1d`` as called, the reference every decision
        is measured against; candidates the cost model cannot judge are kept.
        """
        predicted = self._predicted_times(signature, candidates, device)
        known = [t for t in predicted if t is not None]
        limit = min(known) * self.settings.prune_factor if known else math.inf
        kept = [(c, t) for c, t in zip(candidates, predicted)
                if t is None or t <= limit or c.is_plain_conv1d]
        return sorted(kept, key=lambda ct: math.inf if ct[1] is None else ct[1])

    def tune(self, signature: Signature, device: torch.device,
             candidates: Sequence[Candidate]) -> Choice:
        """Measure ``candidates`` for ``signature``, record every outcome, return the winner.

        Within ``budget_s``: the candidates the cost model does not rule out are warmed up
        (called once and checked against ``F.conv1d``) while the budget allows, those that
        passed are timed interleaved, and every outcome is stored. While other work holds
        the cores, they are measured at one torch thread on the thread's CPU clock, and the
        decision is provisional (:meth:`SelectorCore._busy_aware`).
        """
        outcomes = self._busy_aware(
            device, lambda clock: self._measure(signature, device, candidates, clock))
        self._record(signature, device, outcomes)
        return self.pick_winner(outcomes)

    def _measure(self, signature: Signature, device: torch.device,
                 candidates: Sequence[Candidate], thread_clock: Clock | None = None
                 ) -> list[Outcome]:
        """The outcomes of one tuning run (see :meth:`tune`), timed on ``thread_clock``
        when given."""
        budget = Budget.of(self.clock, self.settings.budget_s)
        inputs = ConvInputs.random(signature, device)
        survivors = reference_first(self.prune(signature, candidates, device))
        # F.conv1d as called, timed on growing windows of its output: the reference every
        # candidate is checked against, and whether the whole call can be timed at all
        probe = probe_reference(inputs, budget, None if device.type == "cuda" else self.load,
                                thread_clock)
        check = OutputCheck.of_reference(
            probe.output, OutputCheck.tolerance_for(signature, self.settings.tolerance))
        estimated: list[Outcome] = []
        if survivors and survivors[0][0].is_plain_conv1d and probe.too_long_for(budget):
            # it would eat the budget: its estimate stands for it, so that nothing slower
            # than F.conv1d can win, and a decision it wins is provisional
            estimated.append(Outcome.estimated(
                survivors[0][0], probe.ranked_s,
                f"F.conv1d as called on windows of {probe.output.shape[-1]} outputs",
                busy=probe.disturbed))
            logger.info("%s: F.conv1d is not run in full: windows of it put the whole call at "
                        "%.3g s, too long for the %.3g s left", signature.short(),
                        probe.estimate_s, budget.remaining())
            survivors = survivors[1:]
        warmed, outcomes = warm_up(survivors, inputs, budget, check, thread_clock=thread_clock,
                                   **({} if self.settings.race else {"drop_factor": None}))
        return (outcomes + self._timed_outcomes(warmed, device, budget, thread_clock=thread_clock)
                + estimated)

    def make_choice(self, outcome: Outcome, source: str) -> Choice:
        return Choice.make(outcome.candidate.strategy, dict(outcome.candidate.params),
                           source=source, median_s=outcome.median_s)

    def fallback_choice(self) -> Choice:
        return Choice.make(reference_strategy(), source="fallback")
