"""Which stored decisions a warm measures again (:mod:`autoconv.offline.revisit`): only those
that measuring now can settle, so that a resumed warm measures only what is left."""

from __future__ import annotations

import pytest

from autoconv.offline.revisit import Revisit
from autoconv.settings import Settings
from autoconv.strategies import all_strategies, reference
from autoconv.tuning.candidates import Candidate
from autoconv.tuning.contention import QuietMachine
from autoconv.tuning.outcome import Outcome
from tests.steady import busy_load
from tuning_db.records import CONTENDED_NOTE

PLAIN = Candidate(reference(), ())
RIVAL = Candidate(next(s for s in all_strategies() if s is not reference()), ())
BUSY = f"{CONTENDED_NOTE} 5 of 5 samples disturbed"


def decision(plain_s: float, rival_s: float, samples: int = 5, note: str | None = None,
             plain_note: str | None = None) -> list[Outcome]:
    return [Outcome(PLAIN, plain_s, samples=1 if plain_note else samples, note=plain_note),
            Outcome(RIVAL, rival_s, samples=samples, note=note)]


@pytest.mark.parametrize(("outcomes", "busy", "again"), [
    (decision(2e-3, 1e-3), False, False),                 # settled: never
    (decision(2e-3, 1e-3, samples=1), True, True),        # a first call's answer: always
    (decision(2e-3, 1e-3, note=BUSY), True, False),       # a busy machine's, still busy
    (decision(2e-3, 1e-3, note=BUSY), False, True),       # ... now quiet
    # F.conv1d estimated at 3 s, too long for a 2 s budget: estimated again if measured
    (decision(3.0, 9.0, plain_note="estimated: F.conv1d on windows"), False, False),
    # ... at 0.5 s: a 2 s budget times it in full now
    (decision(0.5, 9.0, plain_note="estimated: F.conv1d on windows"), False, True)])
def test_a_provisional_decision_is_measured_again_only_when_that_can_settle_it(
        outcomes: list[Outcome], busy: bool, again: bool) -> None:
    rule = Revisit(Settings(budget_s=2.0), busy_load() if busy else QuietMachine())
    assert rule(outcomes) is again
    assert rule.count == again


def test_refresh_measures_everything_again() -> None:
    rule = Revisit(Settings(), busy_load(), refresh=True)
    assert rule(decision(2e-3, 1e-3)) and rule(decision(2e-3, 1e-3, note=BUSY))
    assert rule.count == 2
