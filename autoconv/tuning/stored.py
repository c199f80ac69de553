"""Stored measurements as outcomes: data to check, never code paths to trust.

A row read from the tuning database (written by this process, another process, another
version of autoconv, another machine sharing the database, or imported from a bundle) becomes
a candidate only if its strategy is registered here and that strategy accepts its parameters
for the signature (:meth:`Strategy.validate <autoconv.strategies.Strategy.validate>`: names,
types, ranges, so also the memory they would need). Anything else is ignored, as if absent,
with one warning per signature that says what was wrong.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterable, Sequence

from autoconv.signature import Signature
from autoconv.strategies import freeze_params
from autoconv.tuning.candidates import AnyStrategy, Candidate
from autoconv.tuning.outcome import Outcome

#: Signatures already warned about (one warning per signature and process).
_warned: set[Signature] = set()


def stored_outcomes(signature: Signature, rows: Iterable, strategies: Sequence[AnyStrategy],
                    excluded: Collection[Candidate] = ()) -> list[Outcome]:
    """The valid rows of ``signature`` as outcomes the tie rule can pick from.

    Args:
        rows: stored measurements (``strategy``, ``params``, ``median_s``, ``spread_s``,
            ``samples``, ``error``, ``note``), as the store returns them.
        strategies: the strategies that may be chosen.
        excluded: candidates never to choose (they failed in this process).
    """
    known = {strategy.name: strategy for strategy in strategies}
    outcomes, problems = [], []
    for row in rows:
        strategy = known.get(row.strategy)
        if strategy is None:  # recorded by another version, or a strategy not offered here
            continue
        try:
            strategy.validate(signature, row.params)
        except (TypeError, ValueError) as error:
            problems.append(f"{row.strategy} {dict(row.params)}: {error}")
            continue
        candidate = Candidate(strategy, freeze_params(row.params))
        if candidate not in excluded:
            outcomes.append(Outcome(candidate, row.median_s, row.spread_s, row.samples,
                                    row.error, note=getattr(row, "note", None)))
    if problems and signature not in _warned:
        _warned.add(signature)
        warnings.warn(f"autoconv: ignoring {len(problems)} stored measurement(s) of {signature} "
                      f"that no strategy here can run: {'; '.join(problems)[:300]}",
                      RuntimeWarning, stacklevel=5)
    return outcomes


def failed_outcomes(rows: Iterable, strategies: Sequence[AnyStrategy]) -> list[Outcome]:
    """Stored failed or disqualified rows (``ok`` false) as outcomes that can never win, for
    showing why a candidate is out; rows of strategies not offered here are left out.

    Their parameters are not validated: such an outcome is only shown, never run.
    """
    known = {strategy.name: strategy for strategy in strategies}
    return [Outcome(Candidate(known[row.strategy], freeze_params(row.params)), row.median_s,
                    row.spread_s, row.samples, row.error, ok=False,
                    note=getattr(row, "note", None) or "failed")
            for row in rows if row.strategy in known]
