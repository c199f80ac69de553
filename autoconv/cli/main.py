"""The ``autoconv`` command.

Each command group lives in the module that owns it and adds itself to the parser here;
user mistakes raise :class:`UsageError`, which ``main`` prints as one line (exit status 2).
Nothing imports this module.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import tuning_db.cli
from autoconv import __version__
from autoconv.cli import tuning_commands as commands
from tuning_db.errors import TuningDBError


class UsageError(Exception):
    """A mistake the user can fix (bad path, bad URL, malformed file): printed, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The full ``autoconv`` argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="autoconv", description="Auto-tuning selector for PyTorch conv1d.")
    parser.add_argument("--version", action="version", version=f"autoconv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_commands(sub)
    tuning_db.cli.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``autoconv`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (UsageError, TuningDBError) as error:
        print(f"autoconv: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autoconv: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
