"""The tuning commands of ``autoconv``: ``warm`` (pre-tune signatures) and ``select``
(plus the predictor's ``train`` and ``evaluate``, from :mod:`autoconv.predictor_commands`).

``add_commands(subparsers)`` registers them on the ``autoconv`` parser (see ``cli.py``). Torch
is imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from autoconv import predictor_commands
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
    warm.add_argument("--suite", action="store_true", help=(
        "the built-in suite of real workloads (autoconv.workloads)"))
    predictor_commands.add_grid_options(warm)
    warm.add_argument("--quick", action="store_true", help="only the suite's quick subset")
    warm.add_argument("--only", nargs="+", metavar="NAME", help="only these workloads")
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


def _settings_overrides(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict(extra)
    if args.db is not None:
        values["db_url"] = args.db
    if args.budget is not None:
        if args.budget <= 0:
            raise CommandError(f"--budget must be positive, got {args.budget}")
        values["budget_s"] = args.budget
    return values


def cmd_warm(args: argparse.Namespace) -> int:
    import torch

    from autoconv import workloads
    from autoconv.grid_run import measuring_selector
    from autoconv.settings import settings
    from autoconv.warm import warm

    if args.suite == args.grid:
        raise CommandError("warm needs exactly one of --suite and --grid")
    if args.grid:
        return predictor_commands.cmd_warm_grid(args, _settings_overrides(args, mode="tune"))
    try:
        suite = workloads.select(args.only, quick=args.quick)
    except KeyError as error:
        raise CommandError(str(error).strip("'\"")) from None
    signatures = [w.signature(device=torch.device(args.device).type) for w in suite]
    started = time.perf_counter()

    def progress(done: int, total: int, signature, result) -> None:
        elapsed = time.perf_counter() - started
        eta = elapsed / done * (total - done)
        choice = result.choice
        params = "".join(f" {k}={v}" for k, v in choice.params)
        print(f"[{done}/{total}] {suite[done - 1].name}: {choice.strategy}{params} "
              f"({choice.origin}, {result.seconds:.2f} s) ETA {eta:.0f} s", file=sys.stderr,
              flush=True)

    with settings.override(**_settings_overrides(args, mode="tune")):
        results = warm(signatures, args.device, selector=measuring_selector(),
                       progress=progress)
    measured = sum(r.choice.origin == "measured" for r in results)
    print(f"warmed {len(results)} signatures ({measured} measured, {len(results) - measured} "
          f"already known) in {time.perf_counter() - started:.1f} s")
    return 0


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
