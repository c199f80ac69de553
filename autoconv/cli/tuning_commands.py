"""The tuning commands of ``autoconv``: ``warm`` (pre-tune signatures) and ``select``
(plus the predictor's ``train`` and ``evaluate``, from :mod:`autoconv.cli.predictor_commands`).

``add_commands(subparsers)`` registers them on the ``autoconv`` parser (see ``cli.py``). Torch
is imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from autoconv.cli import predictor_commands
from tuning_db.errors import TuningDBError


class CommandError(TuningDBError):
    """A user mistake in a tuning command: printed as one line by ``autoconv``."""


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not shape or any(size <= 0 for size in shape):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return shape


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    try:
        shard = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N, e.g. 2/4, got {text!r}")
    if not 1 <= shard[0] <= shard[1]:
        raise argparse.ArgumentTypeError(f"shard {text} does not exist (I must be 1..N)")
    return shard


def _padding(text: str) -> int | str:
    return text if text in ("same", "valid") else int(text)


def _common_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--db", metavar="URL", help="tuning database URL (default: "
                        "$AUTOCONV_DB_URL, else the SQLite file in the user cache directory)")
    parent.add_argument("--budget", type=float, metavar="S",
                        help="tuning budget per signature, seconds (default: settings.budget_s)")
    parent.add_argument("--device", default="cpu", help="device to tune on (cpu, cuda, cuda:1)")
    return parent


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``warm`` and ``select`` on an argparse ``subparsers`` object."""
    common = _common_options()
    warm = subparsers.add_parser("warm", parents=[common], help=(
        "tune signatures ahead of time into the database (already tuned ones are skipped)"))
    source = warm.add_argument_group("what to tune (exactly one)")
    source.add_argument("--suite", action="store_true", help=(
        "the built-in suite of real workloads (autoconv.offline.workloads)"))
    source.add_argument("--shapes", metavar="FILE", help=(
        "a JSON or YAML shapes file (format: autoconv.offline.shapes_file)"))
    source.add_argument("--model", metavar="MODULE:FACTORY", help=(
        "record the conv1d calls of FACTORY() on a random input of --input-shape"))
    predictor_commands.add_grid_options(source)
    warm.add_argument("--quick", action="store_true", help="--suite: only its quick subset")
    warm.add_argument("--only", nargs="+", metavar="NAME", help="--suite: only these workloads")
    warm.add_argument("--input-shape", type=_shape, metavar="B,C,L", help="--model: input shape")
    warm.add_argument("--dtype", default="float32", help="--model: dtype (default float32)")
    warm.add_argument("--train", action="store_true", help=(
        "--model: record a training step (forward and backward), so signatures need gradients"))
    warm.add_argument("--save-shapes", metavar="FILE", help=(
        "also write the signatures to tune as a shapes file"))
    warm.add_argument("--shard", type=_shard, metavar="I/N", help=(
        "tune only shard I of N (1-based): N machines sharing one database split the work"))
    warm.add_argument("--total-budget", type=float, metavar="S", help=(
        "start no new signature after S seconds (--grid default: "
        f"{predictor_commands.GRID_TOTAL_BUDGET_S:g})"))
    warm.set_defaults(handler=cmd_warm)

    select = subparsers.add_parser("select", parents=[common], help=(
        "which strategy a conv1d call gets, and where that answer comes from"))
    select.add_argument("--input-shape", type=_shape, required=True, metavar="B,C,L")
    select.add_argument("--weight-shape", type=_shape, required=True, metavar="O,I,K")
    select.add_argument("--stride", type=int, default=1)
    select.add_argument("--padding", type=_padding, default=0, metavar="N|same|valid")
    select.add_argument("--dilation", type=int, default=1)
    select.add_argument("--groups", type=int, default=1)
    select.add_argument("--dtype", default="float32")
    select.add_argument("--grad", action="store_true", help="the call needs gradients")
    select.add_argument("--mode", choices=["tune", "predict"], default="predict", help=(
        "predict (default): answer without measuring; tune: measure if unknown"))
    select.set_defaults(handler=cmd_select)
    predictor_commands.add_commands(subparsers)

    report = subparsers.add_parser("report", parents=[common], help=(
        "a winners map and speed-up chart (PNG) and a markdown summary of this device"))
    report.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    report.add_argument("--channels", type=_shape, default=(1, 16, 64), metavar="C,C,...",
                        help="channel counts of the winners map's panels (default 1,16,64)")
    report.set_defaults(handler=cmd_report)


#: Timed calls per candidate at least when pre-warming, budget or not. Warming is offline, so
#: it trades time for sure answers: a lone warm-up call carries first-call costs and noise (a
#: tenth of the training grid's rows were one; re-measured, such picks were off by up to 2x).
WARM_MIN_SAMPLES = 3


def _settings_overrides(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict(extra)
    if args.db is not None:
        values["db_url"] = args.db
    if args.budget is not None:
        if args.budget <= 0:
            raise CommandError(f"--budget must be positive, got {args.budget}")
        values["budget_s"] = args.budget
    return values


def _warm_signatures(args: argparse.Namespace, overrides: dict[str, Any]) -> list:
    """The signatures ``warm`` was asked to tune (before sharding)."""
    import torch

    from autoconv.offline import workloads
    from autoconv.offline.recording import record_model
    from autoconv.offline.shapes_file import ShapesFileError, load_shapes

    chosen = [args.suite, args.grid, args.shapes is not None, args.model is not None]
    if sum(chosen) != 1:
        raise CommandError("warm needs exactly one of --suite, --grid, --shapes and --model")
    device_type = torch.device(args.device).type
    if args.suite:
        try:
            return [w.signature(device=device_type)
                    for w in workloads.select(args.only, quick=args.quick)]
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
    dtype = getattr(torch, args.dtype, None)
    if not isinstance(dtype, torch.dtype):
        raise CommandError(f"unknown dtype {args.dtype!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")  # the user's own modules, as `python -m` would find them
    try:
        return record_model(args.model, args.input_shape, dtype=dtype, device=args.device,
                            train=args.train)
    except (ImportError, AttributeError, ValueError) as error:
        raise CommandError(f"--model {args.model}: {error}") from None


def cmd_warm(args: argparse.Namespace) -> int:
    from autoconv.buckets import decision_key
    from autoconv.offline.progress import ProgressLine
    from autoconv.offline.shapes_file import dump_shapes
    from autoconv.offline.warm import shard, unique, warm
    from autoconv.settings import settings

    if args.total_budget is not None and args.total_budget <= 0:
        raise CommandError(f"--total-budget must be positive, got {args.total_budget}")
    overrides = _settings_overrides(args, mode="tune", min_samples=WARM_MIN_SAMPLES)
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
        bar = ProgressLine(len(signatures), total_budget)
        report = warm(signatures, args.device, total_budget_s=total_budget,
                      progress=bar.update)
    bar.close()
    visited = len(report.visited)
    rest = "" if report.complete else (
        f"; {report.total - visited} left: run the same command again to continue")
    print(f"warmed {visited}/{report.total} signatures ({report.measured} measured, "
          f"{visited - report.measured} already known) in {report.seconds:.1f} s{rest}")
    return 130 if report.interrupted else 0


def cmd_select(args: argparse.Namespace) -> int:
    import torch

    from autoconv.functional import select
    from autoconv.settings import settings

    dtype = getattr(torch, args.dtype, None)
    if not isinstance(dtype, torch.dtype):
        raise CommandError(f"unknown dtype {args.dtype!r}")
    device = torch.device(args.device)
    x = torch.empty(args.input_shape, dtype=dtype, device=device, requires_grad=args.grad)
    w = torch.empty(args.weight_shape, dtype=dtype, device=device)
    with settings.override(**_settings_overrides(args, mode=args.mode)):
        try:
            choice = select(x, w, None, args.stride, args.padding, args.dilation, args.groups)
        except RuntimeError as error:  # the conv1d arguments themselves are invalid
            raise CommandError(str(error)) from None
    params = ", ".join(f"{k}={v}" for k, v in choice.params) or "no parameters"
    timing = f", {choice.median_s * 1e3:.3g} ms" if choice.median_s else ""
    print(f"{choice.strategy} ({params}) from {choice.origin}{timing}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from autoconv.offline.report import ReportError, make_report
    from autoconv.settings import settings

    with settings.override(**_settings_overrides(args)):
        try:
            paths = make_report(Path(args.out), args.device, tuple(args.channels))
        except ReportError as error:
            raise CommandError(str(error)) from None
    for path in paths:
        print(path)
    return 0
