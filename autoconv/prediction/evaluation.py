"""How good the predictor's picks are on signatures it never saw: grouped cross-validation.

The measured signatures are split into folds *by signature* (every candidate of a signature
lands in the same fold), a model is fitted on the other folds, and for each held-out signature
it picks among the candidates that were measured for it. A pick's **regret** is its measured
time over the best measured time (1.0 = the best). Reported per picker:

* ``top1``: share of picks within the tuner's tie margin (3 %) of the best, i.e. picks the
  tuner itself would have counted as a tie; ``exact``: share that are the measured arg-min;
* ``method_top1``: share of picks whose *strategy* is the best one, i.e. some candidate of the
  picked strategy is within the tie margin of the best (the question scipy's heuristic and
  MIOpen's solver choice answer; how well the block size was picked shows in the regrets);
* ``geomean`` and ``worst`` regret, ``p99`` regret, share within 1.05x, 1.1x and 1.5x of the
  best.

Pickers compared on the same signatures: the learned model, the cost model (calibrated on this
machine), always ``F.conv1d`` as called, and, on single-channel signatures (stride 1, each
output channel one filter of one input channel: 1 -> 1, or depthwise with one filter per
channel), scipy's ``choose_conv_method`` heuristic (``direct`` or ``fft``). The
learned model's confident picks (see :mod:`autoconv.prediction.predictor`) are also summarised
separately.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import GroupKFold

from autoconv.prediction.predictor import LearnedPredictor, Sample
from autoconv.settings import Settings
from autoconv.signature import Signature
from autoconv.strategies import freeze_params, get, is_plain_conv1d

#: Picks within this factor of the best count as top-1 (the tuner's default tie margin).
TIE = 1 + Settings.model_fields["tie_margin"].default

Candidates = list[tuple[str, dict[str, Any]]]
#: Given a signature and its candidates, the index of the pick (None: no opinion).
Picker = Callable[[Signature, Candidates], int | None]
#: Fits on training samples, returns a fitted picker.
Fitter = Callable[[Sequence[Sample]], "FittedPicker"]


@dataclass(frozen=True)
class FittedPicker:
    """A fitted picker: for a signature's candidates, the index of the pick (None: no opinion)
    and whether it is confident (only the learned model ever is)."""

    decide: Callable[[Signature, Candidates], tuple[int | None, bool]]

    @classmethod
    def of(cls, pick: Picker) -> FittedPicker:
        """A picker that is never confident."""
        return cls(lambda signature, candidates: (pick(signature, candidates), False))


@dataclass(frozen=True)
class Scores:
    """The regret statistics of one picker over a set of signatures (see module doc)."""

    name: str
    count: int
    top1: float
    method_top1: float
    exact: float
    geomean: float
    p99: float
    worst: float
    within_1_05: float
    within_1_1: float
    within_1_5: float

    @classmethod
    def of(cls, name: str, regrets: Sequence[float], exact: Sequence[bool],
           method_right: Sequence[bool] | None = None) -> Scores:
        """Scores of picks with these regrets; ``exact[i]``: pick i is the measured arg-min;
        ``method_right[i]``: its strategy is the best (default: its regret is a tie)."""
        r = np.asarray(regrets, dtype=np.float64)
        if r.size == 0:
            nan = math.nan
            return cls(name, 0, nan, nan, nan, nan, nan, nan, nan, nan, nan)
        method = r <= TIE if method_right is None else np.asarray(method_right, dtype=bool)
        return cls(name, int(r.size), float(np.mean(r <= TIE)), float(np.mean(method)),
                   float(np.mean(exact)),
                   float(np.exp(np.mean(np.log(r)))), float(np.quantile(r, 0.99)),
                   float(r.max()), float(np.mean(r <= 1.05)), float(np.mean(r <= 1.1)),
                   float(np.mean(r <= 1.5)))


def candidate_key(sample: Sample) -> tuple[str, tuple]:
    """Which candidate (strategy and parameters) a sample measured, as a hashable key."""
    return sample.strategy, freeze_params(sample.params)


def group_by_signature(samples: Sequence[Sample]) -> dict[Signature, list[Sample]]:
    """Samples per signature, keeping the first measurement of each candidate."""
    groups: dict[Signature, dict[tuple[str, tuple], Sample]] = {}
    for s in samples:
        groups.setdefault(s.signature, {}).setdefault(candidate_key(s), s)
    return {signature: list(group.values()) for signature, group in groups.items()}


def judge(group: Sequence[Sample], index: int) -> tuple[float, bool, bool]:
    """How good picking ``group[index]`` among one signature's measured candidates was:
    (regret, it is the arg-min, its strategy is the best one)."""
    times = np.array([s.seconds for s in group])
    best = times.min()
    same_strategy = [s.seconds for s in group if s.strategy == group[index].strategy]
    return (float(times[index] / best), bool(times[index] == best),
            bool(min(same_strategy) <= best * TIE))


def learned_fitter(samples: Sequence[Sample]) -> FittedPicker:
    """The learned predictor as a picker."""
    model = LearnedPredictor.fit(samples)

    def decide(signature: Signature, candidates: Candidates) -> tuple[int | None, bool]:
        ranking = model.rank(signature, candidates)
        return (None, False) if ranking is None else (ranking.best, ranking.confident)

    return FittedPicker(decide)


def cost_model_picker(device: torch.device | None = None) -> Picker:
    """The calibrated cost model (:mod:`autoconv.tuning.cost_model`) as a picker."""
    from autoconv.tuning.cost_model import default_cost_model

    target = device or torch.device("cpu")

    def pick(signature: Signature, candidates: Candidates) -> int | None:
        times = [default_cost_model.predict(signature, get(name), params, target)
                 for name, params in candidates]
        known = [(t, i) for i, t in enumerate(times) if t is not None]
        return min(known)[1] if known else None

    return pick


def plain_conv1d_picker(signature: Signature, candidates: Candidates) -> int | None:
    """Always ``F.conv1d`` as called (no opinion where it was not measured)."""
    return next((i for i, (name, params) in enumerate(candidates)
                 if is_plain_conv1d(name, params)), None)


def scipy_applies(s: Signature) -> bool:
    """Whether scipy's heuristic describes the signature: stride 1 and each output channel
    one 1-D filter of one input channel (a single channel, or depthwise with one filter per
    channel), which is the convolution ``scipy.signal.convolve`` computes."""
    one_each = s.groups == s.in_channels == s.out_channels
    return s.stride == 1 and one_each


def scipy_picker(signature: Signature, candidates: Candidates) -> int | None:
    """scipy.signal.choose_conv_method(measure=False) on a single-channel signature (each
    channel's 1-D convolution).

    The padded input and the dilated kernel are passed with mode ``'valid'``. scipy's method
    names are registry names here (``'direct'``: ``F.conv1d`` as called; ``'fft'``: one
    transform of the whole signal), in their form without parameters.
    """
    if not scipy_applies(signature):
        return None
    from scipy.signal import choose_conv_method

    x = np.zeros(signature.padded_length, dtype=np.float32)
    w = np.zeros(signature.span, dtype=np.float32)
    method = choose_conv_method(x, w, mode="valid", measure=False)
    return next((i for i, (name, params) in enumerate(candidates)
                 if name == method and not params), None)


@dataclass(frozen=True)
class Evaluation:
    """Scores per picker on all held-out signatures and on the single-channel ones."""

    overall: dict[str, Scores]
    single_channel: dict[str, Scores]
    confident_share: float
    signatures: int


def cross_validate(samples: Sequence[Sample], *, folds: int = 5, seed: int = 0,
                   fitter: Fitter = learned_fitter,
                   baselines: Mapping[str, Picker] | None = None) -> Evaluation:
    """Grouped k-fold cross-validation of ``fitter`` against ``baselines`` (see module doc).

    Raises:
        ValueError: fewer signatures than folds.
    """
    signatures = list(group_by_signature(samples))
    if len(signatures) < folds:
        raise ValueError(f"need at least {folds} measured signatures, got {len(signatures)}")
    # scikit-learn's grouped folds: every measurement of a signature in one fold, the
    # signatures shuffled (seeded) before they are dealt out
    group_ids = np.arange(len(signatures))
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    held_out = [{signatures[i] for i in test}
                for _, test in splitter.split(group_ids, groups=group_ids)]
    return evaluate_held_out(samples, held_out, fitter=fitter, baselines=baselines)


def default_baselines() -> dict[str, Picker]:
    """The pickers the learned model is compared with: the cost model, always ``F.conv1d``,
    and scipy's heuristic (on the signatures it describes)."""
    return {"cost_model": cost_model_picker(), "F.conv1d": plain_conv1d_picker,
            "scipy": scipy_picker}


def evaluate_held_out(samples: Sequence[Sample], held_out: Sequence[set[Signature]], *,
                      fitter: Fitter = learned_fitter,
                      baselines: Mapping[str, Picker] | None = None) -> Evaluation:
    """Score ``fitter`` and ``baselines`` on each set of ``held_out`` signatures in turn, the
    model fitted each time on every sample of the other signatures.

    Grouped cross-validation deals the signatures into folds; a held-out benchmark passes one
    set (its signatures; the rest of ``samples`` is the training data); leave-one-group-out
    passes one set per group. Signatures in no set are only ever trained on.
    """
    groups = group_by_signature(samples)
    if baselines is None:
        baselines = default_baselines()
    #: per picker: (signature, regret, pick is the arg-min, pick's strategy is the best)
    regrets: dict[str, list[tuple[Signature, float, bool, bool]]] = {"learned": [],
                                                                     "learned_confident": []}
    judged = 0
    for held in held_out:
        model = fitter([s for s in samples if s.signature not in held])
        for signature in held:
            group = groups.get(signature)
            if not group:
                continue
            judged += 1
            candidates = [(s.strategy, dict(s.params)) for s in group]
            index, confident = model.decide(signature, candidates)
            if index is not None:
                entry = (signature, *judge(group, index))
                regrets["learned"].append(entry)
                if confident:
                    regrets["learned_confident"].append(entry)
            for name, picker in baselines.items():
                index = picker(signature, candidates)
                if index is not None:
                    regrets.setdefault(name, []).append((signature, *judge(group, index)))

    def scores(only_single: bool) -> dict[str, Scores]:
        table = {}
        for name, entries in regrets.items():
            chosen = [entry for entry in entries if not only_single or scipy_applies(entry[0])]
            table[name] = Scores.of(name, [e[1] for e in chosen], [e[2] for e in chosen],
                                    [e[3] for e in chosen])
        return table

    return Evaluation(scores(False), scores(True),
                      len(regrets["learned_confident"]) / max(judged, 1), judged)


def repeatability(first: Sequence[Sample], second: Sequence[Sample]) -> Scores:
    """How well one measurement run predicts another: the ceiling noise puts on any picker.

    For every signature measured in both runs, the pick is the first run's fastest candidate
    (among candidates both runs measured), scored against the second run's times. A perfect
    model of the first run scores this; no picker can be expected to score much better
    against measurements as noisy.
    """
    later = group_by_signature(second)
    judged = []
    for signature, group in group_by_signature(first).items():
        again = {candidate_key(s): i for i, s in enumerate(later.get(signature, []))}
        shared = [s for s in group if candidate_key(s) in again]
        if shared:
            pick = min(shared, key=lambda s: s.seconds)
            judged.append(judge(later[signature], again[candidate_key(pick)]))
    return Scores.of("repeat measurement", [j[0] for j in judged], [j[1] for j in judged],
                     [j[2] for j in judged])


def fastest_of_runs(runs: Sequence[Sequence[Sample]]) -> list[Sample]:
    """Several measurement runs of the same signatures as one: each candidate at the fastest
    time any run measured for it (a candidate measured by one run only keeps that time).

    A candidate's time in one process can be several times its time in another, for the
    whole of that candidate's measurement: on the project's shared 2-core machine, 5.5% of
    the candidates that never page-faulted read more than 1.5x apart in two runs (0.57x to
    2.3x), and 27% of those that did (``benchmarks/real-layers-cpu.md``). Nothing is ever
    measured faster than it can run, so the fastest of independent runs is the figure a
    pick is judged on.
    """
    fastest: dict[tuple[Signature, tuple[str, tuple]], Sample] = {}
    for run in runs:
        for s in run:
            key = (s.signature, candidate_key(s))
            if key not in fastest or s.seconds < fastest[key].seconds:
                fastest[key] = s
    return list(fastest.values())


def markdown(evaluation: Evaluation) -> str:
    """The evaluation as markdown tables."""
    lines = [f"{evaluation.signatures} held-out signatures (grouped cross-validation; top-1 = "
             f"within {TIE}x of the best; method top-1 = the picked strategy has a candidate "
             f"within {TIE}x of the best); the learned model is confident on "
             f"{evaluation.confident_share:.1%} of them", ""]
    for title, table in (("All signatures", evaluation.overall),
                         ("Single-channel signatures (scipy applies)",
                          evaluation.single_channel)):
        lines += [f"**{title}**", "",
                  "| picker | n | top-1 | method top-1 | exact | geomean regret | p99 | worst "
                  "| <=1.05x | <=1.1x | <=1.5x |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in table.values():
            if s.count:
                lines.append(f"| {s.name} | {s.count} | {s.top1:.1%} | {s.method_top1:.1%} | "
                             f"{s.exact:.1%} | "
                             f"{s.geomean:.3f} | {s.p99:.2f} | {s.worst:.2f} | "
                             f"{s.within_1_05:.1%} | {s.within_1_1:.1%} | "
                             f"{s.within_1_5:.1%} |")
        lines.append("")
    return "\n".join(lines)
