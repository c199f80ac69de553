"""The predictor's commands: ``warm --grid`` (measure the training grid), ``train`` and
``evaluate``.

``add_commands(subparsers)`` registers ``train`` and ``evaluate``; ``warm --grid`` is an
option of ``warm`` (see :mod:`autoconv.cli.tuning_commands`) chosen by
:func:`grid_signatures`. Torch, numpy and scikit-learn are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoconv.cli import options
from autoconv.cli.errors import CommandError

if TYPE_CHECKING:
    from autoconv.prediction.predictor import Sample

#: Defaults of ``warm --grid``: seconds for the whole grid, and per signature.
GRID_TOTAL_BUDGET_S = 900.0
GRID_SIGNATURE_BUDGET_S = 1.0
#: ``warm --grid --adaptive`` chooses its signatures from a pool this many times the grid size.
ADAPTIVE_POOL_FACTOR = 3
#: Pruning while measuring the grid: the model must see slow candidates too, to learn that they
#: are slow; the per-signature budget still skips any candidate predicted to overrun it.
GRID_PRUNE_FACTOR = 1000.0


def add_grid_options(warm: argparse.ArgumentParser) -> None:
    """The ``warm`` options of the training grid."""
    warm.add_argument("--grid", action="store_true", help=(
        "the built-in training grid for the predictor (autoconv.prediction.grid): a bounded, "
        f"resumable run (default {GRID_TOTAL_BUDGET_S:g} s in all, "
        f"{GRID_SIGNATURE_BUDGET_S:g} s per signature)"))
    warm.add_argument("--grid-size", type=int, default=None, metavar="N",
                      help="signatures in the grid "
                           "(default: autoconv.prediction.grid.DEFAULT_SIZE)")
    warm.add_argument("--adaptive", action="store_true", help=(
        "--grid: after a seed sample, measure next where the predictor is least sure, from "
        f"a pool {ADAPTIVE_POOL_FACTOR}x the grid size (autoconv.prediction.adaptive)"))


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``train`` and ``evaluate``."""
    common = argparse.ArgumentParser(add_help=False, parents=[
        options.db_option(), options.device_option("the device whose measurements to use")])
    common.add_argument("--same-kind-weight", type=float, default=None, metavar="W", help=(
        "also learn from devices of the same kind at this weight (default: "
        "autoconv.prediction.training_data.SAME_KIND_WEIGHT; 0: this device only)"))
    train = subparsers.add_parser("train", parents=[common], help=(
        "fit the predictor on this device's measurements, cache it, and report"))
    train.set_defaults(handler=cmd_train)
    evaluate = subparsers.add_parser("evaluate", parents=[common], help=(
        "grouped cross-validation of the predictor against the cost model and scipy"))
    evaluate.add_argument("--folds", type=int, default=5)
    evaluate.add_argument("--markdown", type=Path, metavar="FILE",
                          help="also write the report as markdown to FILE")
    evaluate.set_defaults(handler=cmd_evaluate)


def _load(args: argparse.Namespace) -> tuple[list[Sample], str]:
    import torch

    import tuning_db
    from autoconv.prediction.training_data import SAME_KIND_WEIGHT, load_samples
    from autoconv.storage.store import device_record

    weight = SAME_KIND_WEIGHT if args.same_kind_weight is None else args.same_kind_weight
    if weight < 0:
        raise CommandError(f"--same-kind-weight must be >= 0, got {weight}")
    record = device_record(torch.device(args.device))
    with tuning_db.connect(args.db) as db:
        samples = load_samples(db, record, same_kind_weight=weight)
    if not samples:
        raise CommandError(f"no measurements for this device ({record.device_id}) in the "
                           f"database; run `autoconv warm --grid` first")
    return samples, record.device_id


def cmd_train(args: argparse.Namespace) -> int:
    """Fit, cache and report (data size, fit time, prediction time)."""
    from autoconv.prediction import model_cache
    from autoconv.prediction.evaluation import group_by_signature
    from autoconv.prediction.predictor import LearnedPredictor
    from autoconv.prediction.service import MIN_SIGNATURES
    from autoconv.prediction.training_data import data_key, signatures_of

    samples, device_id = _load(args)
    measured = len(signatures_of(samples))
    if measured < MIN_SIGNATURES:  # the selector would never use such a model
        raise CommandError(f"there are measurements of {measured} signatures for this "
                           f"device; the predictor needs {MIN_SIGNATURES} (run `autoconv warm "
                           "--grid` or `autoconv warm --suite` first)")
    started = time.perf_counter()
    model = LearnedPredictor.fit(samples)
    fit_s = time.perf_counter() - started
    path = model_cache.path_for(device_id)
    model_cache.save(model, path, data_key(samples))
    groups = group_by_signature(samples)
    signatures = list(groups)
    probe = signatures[: min(len(signatures), 200)]
    started = time.perf_counter()
    for signature in probe:
        model.rank(signature, [(s.strategy, dict(s.params)) for s in groups[signature]])
    predict_us = (time.perf_counter() - started) / len(probe) * 1e6
    trees = model.ensemble.feature.shape[0]
    print(f"fitted on {len(samples)} measurements of {len(signatures)} signatures "
          f"(strategies: {', '.join(model.space.strategies)}) in {fit_s:.2f} s; "
          f"{trees} trees of depth <= {model.ensemble.depth}; "
          f"{predict_us:.0f} us per signature (all its candidates); cached at {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Grouped cross-validation report (printed as markdown, optionally saved)."""
    from autoconv.prediction.evaluation import cross_validate, markdown

    samples, _ = _load(args)
    try:
        report = markdown(cross_validate(samples, folds=args.folds))
    except ValueError as error:
        raise CommandError(str(error)) from None
    print(report)
    if args.markdown is not None:
        args.markdown.write_text(report + "\n", encoding="utf-8")
    return 0


def grid_size(args: argparse.Namespace) -> int:
    """``--grid-size``, or the default grid's size."""
    from autoconv.prediction.grid import DEFAULT_SIZE

    size = DEFAULT_SIZE if args.grid_size is None else args.grid_size
    if size <= 0:
        raise CommandError(f"--grid-size must be positive, got {size}")
    return size


def grid_signatures(args: argparse.Namespace, overrides: dict[str, Any]) -> list:
    """The training grid's signatures for ``warm --grid``, and its defaults in ``overrides``
    (a short per-signature budget, and almost no pruning: the model must see slow candidates
    too, to learn that they are slow)."""
    import torch

    from autoconv.prediction.grid import training_grid

    size = grid_size(args)
    overrides.setdefault("budget_s", GRID_SIGNATURE_BUDGET_S)
    overrides.setdefault("prune_factor", GRID_PRUNE_FACTOR)
    pool = size * ADAPTIVE_POOL_FACTOR if getattr(args, "adaptive", False) else size
    return training_grid(pool, device=torch.device(args.device).type)
