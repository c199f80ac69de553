"""The selector: memory -> tuning database -> predictor/cost model -> measure.

This is the only module that composes strategies, timing, the database and the predictor.
Everything it depends on is injected (strategies, timer, clock, store, cost model, predictor),
so its logic is tested with fakes: no GPU, no wall-clock assertions.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from autoconv.buckets import decision_key
from autoconv.choice import PLAIN_CONV1D, Choice
from autoconv.settings import Settings
from autoconv.settings import settings as global_settings
from autoconv.signature import Signature
from autoconv.strategies import Strategy, all_strategies
from autoconv.strategies import reference as reference_strategy
from autoconv.tuning.candidates import Candidate, ConvInputs, enumerate_candidates
from autoconv.tuning.contention import MachineLoad, QuietMachine
from autoconv.tuning.exploration import EXPLORE_FACTOR, MAX_RIVALS
from autoconv.tuning.leasing import tune_under_lease
from autoconv.tuning.memory import DecisionMemory
from autoconv.tuning.outcome import Outcome, provisional_reason, tie_winner
from autoconv.tuning.protocols import ChoiceStore, CostModel, Predictor
from autoconv.tuning.stored import stored_outcomes
from autoconv.tuning.timing import Clock, Timer, Timing, measure_interleaved
from autoconv.tuning.trial import (
    Budget,
    OutputCheck,
    WarmedUp,
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


class Selector(DecisionMemory[Choice]):
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
        self._strategies = list(strategies) if strategies is not None else None
        self.timer = timer
        self.clock = clock
        self.store = store
        self.cost_model = cost_model
        self.predictor = predictor
        self.settings = settings or global_settings
        #: stored outcomes of a signature for which this is true are measured again when
        #: measuring is allowed (``autoconv warm``: provisional decisions, or all of them);
        #: by default, a decision taken on a busy machine, once this one is quiet
        self.revisit = revisit
        #: how busy the machine is now (:mod:`autoconv.tuning.contention`)
        self.load = load if load is not None else MachineLoad()
        super().__init__()
        #: tuning runs whose outcomes the store could not keep (``autoconv warm`` reports it)
        self.unsaved = 0
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

    def adopt(self, signature: Signature, device: torch.device, live: Sequence[Outcome], *,
              source: str = "measured") -> Choice:
        """Decide ``signature`` on outcomes timed on live calls (a correction, or mode
        ``live``'s exploration: :mod:`autoconv.tuning.exploration`): they replace the stored
        outcomes of their candidates, are written to the database, and the tie rule picks
        among all of them.

        Returns:
            The new choice (with ``source``), remembered for the signature.
        """
        key = (self.key_signature(signature), device)
        with self._lock_for(key):
            replaced = {outcome.candidate for outcome in live}
            outcomes = [o for o in self._stored_outcomes(*key) if o.candidate not in replaced]
            outcomes += live
            self._record(key[0], device, live)
            choice = self.pick_winner(outcomes, source=source)
            self._memory[key] = choice
        return choice

    def explorable(self, signature: Signature, device: torch.device, answer: Candidate
                   ) -> list[tuple[Candidate, float | None]]:
        """Mode ``live``: what to explore on ``signature``'s live calls, with the cost model's
        seconds: the current ``answer``, ``F.conv1d`` as called, and the rivals predicted
        within :data:`~autoconv.tuning.exploration.EXPLORE_FACTOR` of the best (at most
        :data:`~autoconv.tuning.exploration.MAX_RIVALS`, fastest predicted first)."""
        failed = self._failed.get((self.key_signature(signature), device), set())
        candidates = [c for c in enumerate_candidates(self.strategies, signature)
                      if c not in failed or c == answer]
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
        """Tune under the store's lease (:func:`~autoconv.tuning.leasing.tune_under_lease`),
        so that processes sharing a database never measure one signature at the same time:
        while another holds it, wait (up to ``budget_s``) for its measurements to appear and
        use them; if they do not, answer without measuring this once (not remembered: a
        later call decides again)."""
        if not self.settings.persist or getattr(self.store, "lease", None) is None:
            return self.tune(signature, device, candidates)

        def from_database() -> Choice | None:
            stored = self._stored_outcomes(signature, device)
            return self.pick_winner(stored, source="database") if stored else None

        return tune_under_lease(
            self.store, signature, device, self.settings.budget_s,
            tune=lambda: self.tune(signature, device, candidates),
            from_database=from_database,
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

    def provisional_reason(self, outcomes: Sequence[Outcome]) -> str | None:
        """Why the decision on ``outcomes`` is provisional (None: it is final), by
        :func:`~autoconv.tuning.outcome.provisional_reason`."""
        return provisional_reason(outcomes, [strategy.name for strategy in self.strategies],
                                  self.settings.tie_margin)

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

    def _stored_outcomes(self, signature: Signature, device: torch.device) -> list[Outcome]:
        if self.store is None:
            return []
        try:
            rows = self.store.candidates(signature, device)
        except Exception as error:  # a broken database must not break the user's model
            warnings.warn(f"autoconv: tuning database lookup failed, deciding without it: "
                          f"{error}", RuntimeWarning, stacklevel=4)
            return []
        return stored_outcomes(signature, rows, self.strategies,
                               self._failed.get((signature, device), set()))

    def _predict(self, signature: Signature, device: torch.device,
                 candidates: Sequence[Candidate]) -> Choice:
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
        passed are timed (:meth:`time_warmed`), and every outcome is stored.
        """
        budget = Budget.of(self.clock, self.settings.budget_s)
        inputs = ConvInputs.random(signature, device)
        survivors = reference_first(self.prune(signature, candidates, device))
        # F.conv1d as called, timed on growing windows of its output: the reference every
        # candidate is checked against, and whether the whole call can be timed at all
        probe = probe_reference(inputs, budget, None if device.type == "cuda" else self.load)
        check = OutputCheck.of_reference(
            probe.output, OutputCheck.tolerance_for(signature, self.settings.tolerance))
        estimated: list[Outcome] = []
        if survivors and survivors[0][0].is_plain_conv1d and probe.too_long_for(budget):
            # it would eat the budget: its estimate stands for it, so that nothing slower
            # than F.conv1d can win, and a decision it wins is provisional
            estimated.append(Outcome.estimated(
                survivors[0][0], probe.estimate_s,
                f"F.conv1d as called on windows of {probe.output.shape[-1]} outputs",
                busy=probe.disturbed))
            logger.info("%s: F.conv1d is not run in full: windows of it put the whole call at "
                        "%.3g s, too long for the %.3g s left", signature.short(),
                        probe.estimate_s, budget.remaining())
            survivors = survivors[1:]
        warmed, outcomes = warm_up(survivors, inputs, budget, check,
                                   **({} if self.settings.race else {"drop_factor": None}))
        outcomes += self.time_warmed(warmed, device, budget) + estimated
        self._record(signature, device, outcomes)
        return self.pick_winner(outcomes)

    def time_warmed(self, warmed: Sequence[WarmedUp], device: torch.device,
                    budget: Budget) -> list[Outcome]:
        """Time the warmed-up candidates interleaved with the injected timer, and turn the
        timings into outcomes.

        When another round would not fit in the budget (and ``min_samples`` asks for no more
        than one), the warm-up calls are the only samples.
        """
        if not warmed:
            return []
        min_samples = min(self.settings.min_samples, self.settings.max_samples)
        if min_samples > 1 or budget.fits_a_round(sum(w.warm_up_s for w in warmed)):
            no_race: dict[str, Any] = {} if self.settings.race else {"drop_factor": None}
            timings = self.timer([w.call for w in warmed], device=device,
                                 deadline=budget.deadline, max_samples=self.settings.max_samples,
                                 min_samples=min_samples, **no_race)
        else:
            timings = [Timing(w.warm_up_s, 0.0, 1) for w in warmed]
        return [Outcome.timed(w.call.candidate, timing, w.error)
                if timing.ok and math.isfinite(timing.median_s) and timing.samples
                else Outcome.failed(w.call.candidate, w.warm_up_s, str(timing.failure), w.error)
                for w, timing in zip(warmed, timings)]

    def pick_winner(self, outcomes: Sequence[Outcome], source: str = "measured") -> Choice:
        """The fastest valid outcome, unless it is tied with a simpler strategy.

        The same rule picks among fresh measurements and among stored ones (``source``
        ``"database"``), so a process reading the database chooses what the process that
        measured chose.

        An outcome is tied with the fastest when its median is within ``tie_margin`` of it, or
        when their interquartile ranges overlap (the difference is within the noise of the
        measurements). A tie goes to the strategy registered first (direct, then fft, then
        overlap-add): simpler and more accurate, and never slower than doing nothing; within
        one strategy, to its form without parameters (``F.conv1d`` itself rather than padding
        first), then to the faster median.
        """
        best = tie_winner(outcomes, [strategy.name for strategy in self.strategies],
                          self.settings.tie_margin)
        if best is None:
            return Choice.make(reference_strategy(), source="fallback")
        return Choice.make(best.candidate.strategy, dict(best.candidate.params),
                           source=source, median_s=best.median_s)

    def _record(self, signature: Signature, device: torch.device,
                outcomes: Sequence[Outcome]) -> None:
        if self.store is None or not self.settings.persist or not outcomes:
            return
        try:
            stored = self.store.record(signature, device, outcomes)
        except Exception as error:
            stored = False
            warnings.warn(f"autoconv: could not store measurements, keeping them in memory "
                          f"only: {error}", RuntimeWarning, stacklevel=4)
        if stored is False:
            self.unsaved += 1
