"""Explaining a decision from hand-made outcomes: the table, the speed-up over F.conv1d only
when it was timed, and why a decision is provisional."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from autoconv.choice import Choice
from autoconv.settings import Settings
from autoconv.strategies import Strategy, direct
from autoconv.tuning.candidates import Candidate
from autoconv.tuning.explanation import explain
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.selector import Selector
from tests.tuning.test_selector import SIG, FakeStore, correct
from tuning_db.records import CONTENDED_NOTE

CPU = torch.device("cpu")
DIRECT = Strategy("direct", direct, reference=True)
FAST = Strategy("fast", correct)


class FailureKeepingStore(FakeStore):
    """A fake store that, like the real one, also returns the failed rows of a signature."""

    def failures(self, signature, device) -> list[SimpleNamespace]:
        return [SimpleNamespace(strategy=o.candidate.name, params=dict(o.candidate.params),
                                median_s=o.median_s, spread_s=o.spread_s, samples=o.samples,
                                error=o.error, note=o.note)
                for o in self.rows.get((signature, device), []) if not o.ok]


def explained(*outcomes: Outcome):
    store = FailureKeepingStore()
    store.rows[(SIG, CPU)] = list(outcomes)
    selector = Selector(strategies=[DIRECT, FAST], store=store,
                        settings=Settings(bucket_lengths=False, mode="predict"))
    choice = selector.choose(SIG, CPU)
    return explain(selector, SIG, CPU, choice)


def test_every_candidate_with_its_speedup_over_f_conv1d_and_a_final_decision() -> None:
    text = explained(Outcome(Candidate(DIRECT, ()), 4e-3, 1e-4, 9),
                     Outcome(Candidate(FAST, ()), 1e-3, 2e-4, 9)).format()
    lines = text.splitlines()
    (chosen,) = [line for line in lines if line.startswith("*")]
    assert "fast" in chosen and "1 ms" in chosen and "4.00x" in chosen and " 9 " in chosen
    assert "F.conv1d: 4 ms" in lines and lines[-1] == "decision: final"


def test_the_speedup_is_f_conv1d_median_over_the_candidate_median() -> None:
    explanation = explained(Outcome(Candidate(DIRECT, ()), 3e-3, 0.0, 9),
                            Outcome(Candidate(FAST, ()), 1.5e-3, 0.0, 9))
    fast, direct = explanation.outcomes
    assert explanation.reference is direct
    assert explanation.speedup(fast) == 2.0 and explanation.speedup(direct) == 1.0


def test_a_failed_candidate_is_listed_last_with_its_note_and_no_speedup() -> None:
    failed = Outcome.failed(Candidate(FAST, ()), 5e-4, "RuntimeError: out of memory")
    explanation = explained(Outcome(Candidate(DIRECT, ()), 4e-3, 0.0, 9), failed)
    assert explanation.outcomes[-1] == failed and explanation.speedup(failed) is None
    assert explanation.choice.strategy == DIRECT.name and explanation.provisional is None
    lines = explanation.format().splitlines()
    assert lines[1].startswith("*") and lines[1].split()[1] == DIRECT.name
    row = lines[2]
    assert row.split()[0] == FAST.name and "failed: RuntimeError: out of memory" in row
    assert " - " in row and "x " not in row


def test_no_speedup_is_shown_without_a_timed_f_conv1d() -> None:
    explanation = explained(Outcome(Candidate(FAST, ()), 1e-3, 0.0, 9))
    assert explanation.reference is None
    assert explanation.speedup(explanation.outcomes[0]) is None
    text = explanation.format()
    assert "F.conv1d: not timed for this signature" in text and "x " not in text.split("\n")[1]


def test_a_contended_or_thinly_sampled_winner_is_explained_as_provisional() -> None:
    busy = f"{CONTENDED_NOTE} 6 of 6 samples disturbed"
    text = explained(Outcome(Candidate(DIRECT, ()), 9e-3, 0.0, 6, note=busy),
                     Outcome(Candidate(FAST, ()), 1e-3, 0.0, 6, note=busy)).format()
    assert "decision: provisional: the winner was timed on a busy machine" in text
    assert busy in text
    once = explained(Outcome(Candidate(FAST, ()), 1e-3, 0.0, 1)).format()
    assert "decision: provisional: the winner was timed 1 time(s)" in once


def test_nothing_measured_says_where_the_answer_came_from_and_how_to_measure() -> None:
    selector = Selector(strategies=[DIRECT, FAST], store=FakeStore(),
                        settings=Settings(bucket_lengths=False, mode="predict"))
    explanation = explain(selector, SIG, CPU, Choice.make(DIRECT, source="cost_model"))
    text = explanation.format()
    assert "nothing was measured" in text and "cost model" in text and "autoconv warm" in text
    assert explanation.provisional is None
