"""``autoconv report``: a winners map and a speed-up chart (PNG) and a markdown summary of
what the tuning database knows about this device (:mod:`autoconv.offline.report`)."""

from __future__ import annotations

import argparse

from autoconv.cli import options
from autoconv.cli.errors import CommandError


def add_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``report`` on an argparse ``subparsers`` object."""
    report = subparsers.add_parser("report", parents=[options.tuning_options()], help=(
        "a winners map and speed-up chart (PNG) and a markdown summary of this device"))
    report.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    report.add_argument("--channels", type=options.shape, default=None, metavar="C,C,...",
                        help="channel counts of the winners map's panels (default: the input "
                        "channel counts measured most often, at most three)")
    report.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report's files into ``--out`` and print their paths."""
    from pathlib import Path

    from autoconv.offline.report import ReportError, make_report
    from autoconv.settings import settings

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} exists and is not a folder")
    with settings.override(**options.settings_overrides(args)):
        try:
            paths = make_report(out, args.device,
                                    tuple(args.channels) if args.channels else None)
        except ReportError as error:
            raise CommandError(str(error)) from None
    for path in paths:
        print(path)
    return 0
