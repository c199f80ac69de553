"""The report's predictor section: grouped cross-validation
(:mod:`autoconv.prediction.evaluation`), then what *regret* means and, for each picker, its
worst pick: the signature, what it picked and what was fastest.

The evaluation itself is unchanged; its pickers are wrapped to note each pick, and each
pick is judged again here the same way (:func:`~autoconv.prediction.evaluation.judge`), so
that the worst regret printed in the table can be named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autoconv.prediction.evaluation import (
    Candidates,
    FittedPicker,
    Picker,
    cross_validate,
    default_baselines,
    group_by_signature,
    learned_fitter,
    markdown,
)
from autoconv.prediction.predictor import Sample
from autoconv.signature import Signature
from autoconv.strategies import is_plain_conv1d

#: The name the evaluation gives the learned model's picks, and its confident ones.
LEARNED, CONFIDENT = "learned", "learned_confident"

REGRET_MEANS = (
    "**Regret** of a pick: the measured time of the candidate a picker chose (or predicted) "
    "for a held-out signature over the fastest measured candidate's time for that signature; "
    "1.00 = it picked the fastest, 2.00 = its pick runs twice as long as the best. "
    "*geomean*, *p99* and *worst* summarise it over the held-out signatures.")


@dataclass(frozen=True)
class WorstPick:
    """A picker's pick with the largest regret: the signature, the picked candidate and the
    fastest measured one, and their times."""

    picker: str
    regret: float
    signature: Signature
    picked: str
    picked_s: float
    fastest: str
    fastest_s: float


def candidate_text(strategy: str, params: Mapping[str, Any]) -> str:
    """A candidate as the report names it: ``F.conv1d`` as called, or ``name(k=v, ...)``."""
    if is_plain_conv1d(strategy, params):
        return "F.conv1d"
    inner = ", ".join(f"{key}={value}" for key, value in sorted(params.items()))
    return f"{strategy}({inner})" if inner else strategy


class PickLog:
    """Wraps the evaluation's pickers to note every pick: (picker, signature, candidate)."""

    def __init__(self) -> None:
        self.picks: list[tuple[str, Signature, tuple[str, dict[str, Any]]]] = []

    def fitter(self, samples: Sequence[Sample]) -> FittedPicker:
        """:func:`~autoconv.prediction.evaluation.learned_fitter`, noting its picks."""
        fitted = learned_fitter(samples)

        def decide(signature: Signature, candidates: Candidates) -> tuple[int | None, bool]:
            index, confident = fitted.decide(signature, candidates)
            if index is not None:
                self.picks.append((LEARNED, signature, candidates[index]))
                if confident:
                    self.picks.append((CONFIDENT, signature, candidates[index]))
            return index, confident

        return FittedPicker(decide)

    def baselines(self, pickers: Mapping[str, Picker]) -> dict[str, Picker]:
        """``pickers``, each noting its picks."""
        return {name: self._noting(name, picker) for name, picker in pickers.items()}

    def _noting(self, name: str, picker: Picker) -> Picker:
        def pick(signature: Signature, candidates: Candidates) -> int | None:
            index = picker(signature, candidates)
            if index is not None:
                self.picks.append((name, signature, candidates[index]))
            return index

        return pick

    def worst(self, samples: Sequence[Sample]) -> list[WorstPick]:
        """Each picker's pick with the largest regret (the first such, in pick order)."""
        groups = group_by_signature(samples)
        worst: dict[str, WorstPick] = {}
        for name, signature, (strategy, params) in self.picks:
            group = groups[signature]
            picked = next(s for s in group if s.strategy == strategy
                          and dict(s.params) == dict(params))
            best = min(group, key=lambda s: s.seconds)
            regret = picked.seconds / best.seconds
            if name not in worst or regret > worst[name].regret:
                worst[name] = WorstPick(name, regret, signature,
                                        candidate_text(strategy, params), picked.seconds,
                                        candidate_text(best.strategy, best.params),
                                        best.seconds)
        return list(worst.values())


def worst_table(worst: Sequence[WorstPick]) -> list[str]:
    """Markdown lines: each picker's worst pick."""
    lines = ["| picker | worst regret | signature | picked | fastest measured |",
             "|---|---:|---|---|---|"]
    for w in worst:
        if w.regret <= 1.0:
            lines.append(f"| {w.picker} | 1.00 | every pick was the fastest measured | | |")
        else:
            lines.append(f"| {w.picker} | {w.regret:.2f} | {w.signature.short()} | "
                         f"{w.picked} {w.picked_s * 1e3:.3g} ms | {w.fastest} "
                         f"{w.fastest_s * 1e3:.3g} ms |")
    return lines


def evaluation_markdown(samples: Sequence[Sample], folds: int = 5) -> str:
    """The predictor's grouped cross-validation as markdown tables, with what regret is and
    each picker's worst pick (the signature and its two candidates)."""
    log = PickLog()
    evaluation = cross_validate(samples, folds=folds, fitter=log.fitter,
                                baselines=log.baselines(default_baselines()))
    order = list(evaluation.overall)
    worst = sorted(log.worst(samples), key=lambda w: order.index(w.picker))
    lines = [markdown(evaluation), REGRET_MEANS, "",
             "The worst pick of each picker (the *worst* column of the first table):", "",
             *worst_table(worst), ""]
    return "\n".join(lines)
