"""What both selectors share: stored outcomes, recording, the lease, timing warmed-up
candidates into outcomes, and the tie rule's pick.

Database failures are not handled here: the store a process's selectors are given is a
:class:`~autoconv.storage.guarded.GuardedStore`, the one layer that turns a failing database
into misses (one warning, then a rest).

:class:`SelectorCore` is the base of :class:`~autoconv.tuning.selector.Selector` (conv1d
calls) and :class:`~autoconv.tuning.stream_selector.StreamSelector` (streams). Each subclass
says what a choice is (:meth:`SelectorCore.make_choice`), what it answers without a winner
(:meth:`SelectorCore.fallback_choice`) and how it decides (``_lookup_or_decide``, from
:class:`~autoconv.tuning.memory.DecisionMemory`); the rest is here, once.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, Generic, TypeVar

import torch

from autoconv.settings import Settings
from autoconv.settings import settings as global_settings
from autoconv.signature import Signature
from autoconv.tuning.candidates import Candidate
from autoconv.tuning.contention import MachineLoad, QuietMachine, one_thread_when_busy
from autoconv.tuning.leasing import tune_under_lease
from autoconv.tuning.memory import DecisionMemory
from autoconv.tuning.outcome import Outcome, provisional_reason, tie_winner
from autoconv.tuning.protocols import ChoiceStore, LeaseStore
from autoconv.tuning.stored import stored_outcomes
from autoconv.tuning.timing import Clock, Timer, Timing, measure_interleaved, thread_cpu_clock
from autoconv.tuning.trial import Budget

Decision = TypeVar("Decision")


class SelectorCore(DecisionMemory[Decision], Generic[Decision]):
    """The shared machinery of a selector (see the module docstring).

    Args:
        timer, clock: how candidates are timed, and the wall clock (injectable for tests).
        store: the tuning database (None: decisions live in memory only).
        settings: what the selector obeys (default: ``autoconv.settings``).
        load: how busy the machine is (:mod:`autoconv.tuning.contention`; default: read
            from the machine).
    """

    def __init__(self, *, timer: Timer = measure_interleaved, clock: Clock = time.perf_counter,
                 store: ChoiceStore | None = None, settings: Settings | None = None,
                 load: MachineLoad | QuietMachine | None = None) -> None:
        self.timer = timer
        self.clock = clock
        self.store = store
        self.settings = settings or global_settings
        #: how busy the machine is now (:mod:`autoconv.tuning.contention`)
        self.load = load if load is not None else MachineLoad()
        super().__init__()
        #: tuning runs whose outcomes the store could not keep (``autoconv warm`` reports it)
        self.unsaved = 0

    # -- what a subclass says --------------------------------------------------------------

    @property
    def strategies(self) -> Sequence[Any]:
        raise NotImplementedError

    def make_choice(self, outcome: Outcome, source: str) -> Decision:
        """The choice that runs ``outcome``'s candidate."""
        raise NotImplementedError

    def fallback_choice(self) -> Decision:
        """The answer when no outcome may win (the reference)."""
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------

    def strategy_order(self) -> list[str]:
        """The strategies' names in registry order: the tie rule's order of simplicity."""
        return [strategy.name for strategy in self.strategies]

    def pick_winner(self, outcomes: Sequence[Outcome], source: str = "measured") -> Decision:
        """The fastest valid outcome, unless it is tied with a simpler strategy
        (:func:`~autoconv.tuning.outcome.tie_winner`); the reference when none is valid.

        The same rule picks among fresh measurements and stored ones (``source``
        ``"database"``), so a process reading the database chooses what the process that
        measured chose.
        """
        best = tie_winner(outcomes, self.strategy_order(), self.settings.tie_margin)
        return self.fallback_choice() if best is None else self.make_choice(best, source)

    def key_signature(self, signature: Signature) -> Signature:
        """The signature decisions are stored under (the selector of calls buckets
        lengths)."""
        return signature

    def adopt(self, signature: Signature, device: torch.device, live: Sequence[Outcome], *,
              source: str = "measured") -> Decision:
        """Decide ``signature`` on outcomes timed on live calls (a correction, or mode
        ``live``'s exploration of calls or streams: :mod:`autoconv.tuning.exploration`,
        :mod:`autoconv.tuning.stream_exploration`): they replace the stored
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

    def provisional_reason(self, outcomes: Sequence[Outcome]) -> str | None:
        """Why the decision on ``outcomes`` is provisional (None: it is final), by
        :func:`~autoconv.tuning.outcome.provisional_reason`."""
        return provisional_reason(outcomes, self.strategy_order(), self.settings.tie_margin)

    def _stored_outcomes(self, signature: Signature, device: torch.device,
                         excluded: Collection[Candidate] = ()) -> list[Outcome]:
        """The stored rows of ``signature`` on ``device`` that may be chosen here (checked
        by their strategies, ``excluded`` left out); none without a database. A database
        that fails is the store's to turn into a miss
        (:class:`~autoconv.storage.guarded.GuardedStore`, what every selector of a process
        is given): it is not caught again here."""
        if self.store is None:
            return []
        rows = self.store.candidates(signature, device)
        return stored_outcomes(signature, rows, self.strategies, excluded)

    def _record(self, signature: Signature, device: torch.device,
                outcomes: Sequence[Outcome]) -> None:
        """Store one tuning run's outcomes (counted in :attr:`unsaved` when the store says
        it did not keep them: a guarded store's answer to a failing database)."""
        if self.store is None or not self.settings.persist or not outcomes:
            return
        if self.store.record(signature, device, outcomes) is False:
            self.unsaved += 1

    def _under_lease(self, signature: Signature, device: torch.device,
                     tune: Callable[[], Decision], fallback: Callable[[], Decision]
                     ) -> Decision:
        """``tune()`` under the store's lease (:func:`~autoconv.tuning.leasing.
        tune_under_lease`), so that processes sharing a database never measure one
        signature at the same time: while another holds it, wait (up to ``budget_s``) for
        its measurements and use them; if they do not come, ``fallback()`` this once."""
        if not self.settings.persist or not isinstance(self.store, LeaseStore):
            return tune()

        def from_database() -> Decision | None:
            stored = self._stored_outcomes(signature, device)
            return self.pick_winner(stored, source="database") if stored else None

        return tune_under_lease(self.store, signature, device, self.settings.budget_s,
                                tune=tune, from_database=from_database, fallback=fallback)

    def _busy_aware(self, device: torch.device,
                    measure: Callable[[Clock | None], list[Outcome]]) -> list[Outcome]:
        """The outcomes of one tuning run, ``measure(thread_clock)``.

        While other work holds the CPU's cores, the run is at one torch thread
        (:func:`~autoconv.tuning.contention.one_thread_when_busy`) and times on the thread's
        CPU clock (:func:`~autoconv.tuning.timing.thread_cpu_clock`, handed to ``measure``;
        None otherwise), which waiting for a core does not advance; each outcome is noted
        so (:meth:`Outcome.at_one_thread`), and the decision is provisional.
        """
        with one_thread_when_busy(None if device.type == "cuda" else self.load,
                                  device) as reduced_from:
            outcomes = measure(thread_cpu_clock() if reduced_from is not None else None)
        if reduced_from is None:
            return outcomes
        return [outcome.at_one_thread(reduced_from) for outcome in outcomes]

    def _timed_outcomes(self, warmed: Sequence[Any], device: torch.device, budget: Budget, *,
                        per_call: float = 1.0, thread_clock: Clock | None = None
                        ) -> list[Outcome]:
        """Time warmed-up candidates (each with ``call``, ``error``, ``warm_up_s``)
        interleaved with the injected timer (on ``thread_clock`` when given), and turn the
        timings into outcomes, each divided by ``per_call`` (a stream's cycle of chunks: its
        time is one chunk's).

        When another round would not fit in the budget (and ``min_samples`` asks for no more
        than one), the warm-up calls are the only samples.
        """
        if not warmed:
            return []
        settings = self.settings
        min_samples = min(settings.min_samples, settings.max_samples)
        if min_samples > 1 or budget.fits_a_round(sum(w.warm_up_s for w in warmed)):
            options: dict[str, Any] = {} if settings.race else {"drop_factor": None}
            if thread_clock is not None:
                options["thread_clock"] = thread_clock
            timings = self.timer([w.call for w in warmed], device=device,
                                 deadline=budget.deadline, max_samples=settings.max_samples,
                                 min_samples=min_samples, **options)
        else:
            timings = [Timing(w.warm_up_s, 0.0, 1) for w in warmed]
        outcomes = []
        for w, timing in zip(warmed, timings):
            candidate = w.call.candidate
            if timing.ok and math.isfinite(timing.median_s) and timing.samples:
                scaled = dataclasses.replace(timing, median_s=timing.median_s / per_call,
                                             spread_s=timing.spread_s / per_call)
                outcomes.append(Outcome.timed(candidate, scaled, w.error))
            else:
                outcomes.append(Outcome.failed(candidate, w.warm_up_s / per_call,
                                               str(timing.failure), w.error))
        return outcomes
