"""The tuning commands of ``autoconv``: ``warm`` (pre-tune signatures) and ``select`` (what
a call gets, and why).

``add_commands(subparsers)`` registers them on the ``autoconv`` parser (see ``main.py``). Torch
is imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from autoconv.cli import options, predictor_commands, warm_report
from autoconv.cli.errors import CommandError
from tuning_db.records import SETTLED_SAMPLES


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``warm`` and ``select`` on an argparse ``subparsers`` object."""
    common = options.tuning_options()
    warm = subparsers.add_parser("warm", parents=[common], help=(
        "tune signatures ahead of time into the database (already tuned ones are skipped)"))
    source = warm.add_argument_group("what to tune (exactly one)")
    source.add_argument("--suite", action="store_true", help=(
        "the built-in suite of real workloads (autoconv.catalogue.suite)"))
    source.add_argument("--shapes", metavar="FILE", help=(
        "a JSON or YAML shapes file (format: autoconv.offline.shapes_file)"))
    source.add_argument("--model", metavar="MODULE:FACTORY", help=(
        "record the conv1d calls of FACTORY() on a random input of --input-shape"))
    source.add_argument("--wanted", action="store_true", help=(
        "the signatures processes of this machine's fingerprint answered without a "
        "measurement (mode predict), noted in the database: a fleet's tuning worker"))
    predictor_commands.add_grid_options(source)
    warm.add_argument("--follow", action="store_true", help=(
        "--wanted: keep watching for newly wanted signatures until interrupted"))
    warm.add_argument("--every", type=float, default=10.0, metavar="S", help=(
        "--wanted --follow: seconds between looks at the database (default 10)"))
    warm.add_argument("--refresh", action="store_true", help=(
        "measure every signature again, even those the database already knows (without it, "
        f"a provisional decision, timed fewer than {SETTLED_SAMPLES} times, only estimated or "
        "on a busy machine, is measured again only when that can settle it, e.g. once the "
        "machine is quiet)"))
    warm.add_argument("--quick", action="store_true", help="--suite: only its quick subset")
    warm.add_argument("--only", nargs="+", metavar="NAME", help="--suite: only these workloads")
    warm.add_argument("--input-shape", type=options.shape, metavar="B,C,L",
                      help="--model: input shape")
    warm.add_argument("--dtype", default="float32", help="--model: dtype (default float32)")
    warm.add_argument("--train", action="store_true", help=(
        "--model: record a training step (forward and backward), so signatures need gradients"))
    warm.add_argument("--save-shapes", metavar="FILE", help=(
        "also write the signatures to tune as a shapes file"))
    warm.add_argument("--shard", type=options.shard, metavar="I/N", help=(
        "tune only shard I of N (1-based): N machines sharing one database split the work"))
    warm.add_argument("--total-budget", type=float, metavar="S", help=(
        "start no new signature after S seconds (--grid default: "
        f"{predictor_commands.GRID_TOTAL_BUDGET_S:g})"))
    warm.set_defaults(handler=cmd_warm)

    select = subparsers.add_parser("select", parents=[common], help=(
        "which strategy a conv1d call gets, and where that answer comes from"))
    select.add_argument("--input-shape", type=options.shape, required=True, metavar="B,C,L")
    select.add_argument("--weight-shape", type=options.shape, required=True, metavar="O,I,K")
    select.add_argument("--stride", type=int, default=1)
    select.add_argument("--padding", type=options.padding, default=0, metavar="N|same|valid")
    select.add_argument("--dilation", type=int, default=1)
    select.add_argument("--groups", type=int, default=1)
    select.add_argument("--dtype", default="float32")
    select.add_argument("--grad", action="store_true", help="the call needs gradients")
    select.add_argument("--layer", action="store_true", help=(
        "an autoconv.Conv1d layer's call in inference, whose weight (and its spectrum) is "
        "reused from call to call; decided apart from a functional call"))
    select.add_argument("--mode", choices=["tune", "predict"], default="predict", help=(
        "predict (default): answer without measuring; tune: measure if unknown"))
    select.set_defaults(handler=cmd_select)


#: Timed calls per candidate at least when pre-warming, budget or not. Warming is offline, so
#: it trades time for sure answers: a lone warm-up call carries first-call costs and noise,
#: and what is stored is what the predictor learns from. A stored decision timed fewer times
#: is provisional, and warming measures it again.
WARM_MIN_SAMPLES = SETTLED_SAMPLES


def _warm_signatures(args: argparse.Namespace, overrides: dict[str, Any]) -> list:
    """The signatures ``warm`` was asked to tune (before sharding)."""
    import torch

    from autoconv.catalogue import suite
    from autoconv.offline.recording import record_model
    from autoconv.offline.shapes_file import ShapesFileError, load_shapes

    device_type = torch.device(args.device).type
    if args.suite:
        try:
            return [w.signature(device=device_type)
                    for w in suite.select(args.only, quick=args.quick)]
        except KeyError as error:
            raise CommandError(str(error).strip("'\"")) from None
    if args.grid:
        return predictor_commands.grid_signatures(args, overrides)
    if args.shapes is not None:
        try:
            return load_shapes(args.shapes, device_type)
        except ShapesFileError as error:
            raise CommandError(str(error)) from None
    if args.input_shape is None:
        raise CommandError("--model needs --input-shape B,C,L")
    dtype = options.dtype(args.dtype)
    if "" not in sys.path:
        sys.path.insert(0, "")  # the user's own modules, as `python -m` would find them
    try:
        return record_model(args.model, args.input_shape, dtype=dtype, device=args.device,
                            train=args.train)
    except (ImportError, AttributeError, ValueError) as error:
        raise CommandError(f"--model {args.model}: {error}") from None


def _warm_adaptively(pool: list, size: int, device: str, total_budget: float | None):
    """``warm --grid --adaptive``: ``size`` signatures of ``pool``, with a progress line."""
    from autoconv.offline.progress import ProgressLine
    from autoconv.offline.warm import warm_adaptive

    bar = ProgressLine(size, total_budget)
    try:
        return warm_adaptive(pool, size, device, total_budget_s=total_budget,
                             progress=bar.update)
    finally:
        bar.close()


def cmd_warm(args: argparse.Namespace) -> int:
    """``autoconv warm``: tune the chosen signatures into the database (resumable)."""
    from autoconv.buckets import decision_key
    from autoconv.offline.progress import ProgressLine
    from autoconv.offline.shapes_file import dump_shapes
    from autoconv.offline.warm import shard, unique, warm
    from autoconv.settings import settings

    chosen = [args.suite, args.grid, args.shapes is not None, args.model is not None,
              args.wanted]
    if sum(chosen) != 1:
        raise CommandError("warm needs exactly one of --suite, --grid, --shapes, --model and "
                           "--wanted")
    if args.follow and not args.wanted:
        raise CommandError("--follow watches for wanted signatures: use it with --wanted")
    if args.every <= 0:
        raise CommandError(f"--every must be positive, got {args.every}")
    if args.total_budget is not None and args.total_budget <= 0:
        raise CommandError(f"--total-budget must be positive, got {args.total_budget}")
    if args.adaptive:
        if not args.grid:
            raise CommandError("--adaptive chooses among the grid's signatures: use --grid")
        clashing = [name for name, value in (("--shard", args.shard), ("--refresh", args.refresh),
                                             ("--save-shapes", args.save_shapes)) if value]
        if clashing:
            raise CommandError(f"--adaptive decides what to measure as it goes: it cannot "
                               f"be combined with {', '.join(clashing)}")
    overrides = options.settings_overrides(args, mode="tune", min_samples=WARM_MIN_SAMPLES)
    with settings.override(**overrides):
        warm_report.check_database(args.device)  # before anything is measured
    if args.wanted:
        return _warm_wanted(args, overrides)
    signatures = _warm_signatures(args, overrides)
    with settings.override(**overrides):
        # Shard what will be stored (bucketed lengths), so shards never share a decision.
        signatures = unique(decision_key(s, settings) for s in signatures)
        if args.shard is not None:
            signatures = shard(signatures, args.shard[0] - 1, args.shard[1])
        if args.save_shapes:
            dump_shapes(signatures, args.save_shapes)
        total_budget = args.total_budget
        if total_budget is None and args.grid:
            total_budget = predictor_commands.GRID_TOTAL_BUDGET_S
        if args.adaptive:
            report = _warm_adaptively(signatures, predictor_commands.grid_size(args),
                                      args.device, total_budget)
        else:
            bar = ProgressLine(len(signatures), total_budget)
            report = warm(signatures, args.device, total_budget_s=total_budget,
                          progress=bar.update, refresh=args.refresh)
            bar.close()
    return warm_report.finish(report, overrides.get("db_url"))


def _warm_wanted(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """``warm --wanted [--follow]``: measure what processes of this fingerprint answered
    without a measurement, most called first; with ``--follow``, look again every
    ``--every`` seconds until interrupted."""
    import time

    from autoconv.offline.progress import ProgressLine
    from autoconv.offline.wanted import wanted_signatures
    from autoconv.offline.warm import warm
    from autoconv.settings import settings
    from tuning_db.errors import TuningDBError

    status = 0
    try:
        while True:
            with settings.override(**overrides):
                try:
                    signatures = wanted_signatures(settings.db_url, args.device)
                except TuningDBError as error:
                    raise CommandError(str(error)) from None
                if signatures:
                    bar = ProgressLine(len(signatures), args.total_budget)
                    report = warm(signatures, args.device, total_budget_s=args.total_budget,
                                  progress=bar.update, refresh=args.refresh)
                    bar.close()
                    status = warm_report.finish(report, overrides.get("db_url"))
                    if status == 130:
                        return status
                elif not args.follow:
                    print("nothing is wanted: no process of this machine's fingerprint has "
                          "noted a signature without a measurement")
            if not args.follow:
                return status
            time.sleep(args.every)
    except KeyboardInterrupt:
        return 130


#: The option of ``autoconv select`` that sets each field of a signature.
_OPTION_OF = {"batch": "--input-shape", "in_channels": "--input-shape",
              "length": "--input-shape", "out_channels": "--weight-shape",
              "kernel_size": "--weight-shape", "padding_left": "--padding",
              "padding_right": "--padding", "stride": "--stride", "dilation": "--dilation",
              "groups": "--groups", "dtype": "--dtype", "device": "--device"}


def _check_range(signature: Any) -> None:
    """Refuse a call with a size the tuning database cannot hold (32-bit), naming the option
    and the range: the input is at fault, never the database.

    Raises:
        CommandError: a size out of range.
    """
    from autoconv.storage.store import UnstorableSignature, signature_record

    try:
        signature_record(signature)
    except UnstorableSignature as error:
        option = _OPTION_OF.get(error.field)
        raise CommandError(f"{option}: {error}" if option else str(error)) from None


def cmd_select(args: argparse.Namespace) -> int:
    """``autoconv select``: the strategy a call gets, where the answer came from, and the
    measurements behind it (:mod:`autoconv.tuning.explanation`)."""
    import torch

    from autoconv.functional import select
    from autoconv.runtime.dispatch import dispatcher
    from autoconv.settings import settings
    from autoconv.signature import Signature
    from autoconv.tuning.explanation import explain as explain_choice

    dtype = options.dtype(args.dtype)
    device = torch.device(args.device)
    # Shapes only, on the meta device: a call of any size is described without allocating.
    x = torch.empty(args.input_shape, dtype=dtype, device="meta", requires_grad=args.grad)
    w = torch.empty(args.weight_shape, dtype=dtype, device="meta")
    with settings.override(**options.settings_overrides(args, mode=args.mode)):
        try:
            signature = Signature.of(x, w, None, args.stride, args.padding, args.dilation,
                                     args.groups)
        except (RuntimeError, TypeError) as error:  # the conv1d arguments are invalid
            raise CommandError(str(error)) from None
        if args.layer and args.grad:
            raise CommandError("--layer names a call without gradients: drop --grad")
        signature = dataclasses.replace(signature, device=device.type,
                                        weight_reused=args.layer)
        _check_range(signature)
        choice = select(signature, device=device)
        explanation = explain_choice(dispatcher.selector, signature, device, choice)
    params = ", ".join(f"{k}={v}" for k, v in choice.params) or "no parameters"
    # a time from the database or a measurement was timed; one from a model is a prediction
    timed = choice.origin in ("measured", "database", "corrected")
    timing = (f", {choice.median_s * 1e3:.3g} ms {'measured' if timed else 'predicted'}"
              if choice.median_s else "")
    print(f"{choice.strategy} ({params}) from {choice.origin}{timing}")
    print(explanation.format())
    return 0
