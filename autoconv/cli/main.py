"""The ``autoconv`` command: the parser, and the one place user mistakes become one line.

Each command group lives in a module of its own and adds itself to the parser here; a
mistake the user can fix raises :class:`~autoconv.cli.errors.CommandError` (or a
:class:`tuning_db.TuningDBError`), which :func:`main` prints as one line (exit status 2).
Warnings print as one line each (:func:`one_line_warning`). Nothing imports this package.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

import tuning_db.cli
from autoconv import __version__
from autoconv.cli import predictor_commands, report_command, tuning_commands
from autoconv.cli.errors import CommandError
from tuning_db.errors import TuningDBError


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line (and exit status 2), as every other
    mistake of the ``autoconv`` command is: the usage is a ``--help`` away."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full ``autoconv`` argument parser with every sub-command registered."""
    parser = OneLineParser(
        prog="autoconv", description="Auto-tuning selector for PyTorch conv1d.")
    parser.add_argument("--version", action="version", version=f"autoconv {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=(
        "log each signature's decision (what was tuned or looked up, the winner, its time, "
        "where the answer came from); as AUTOCONV_LOG_LEVEL=INFO"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    tuning_commands.add_commands(sub)
    predictor_commands.add_commands(sub)
    report_command.add_command(sub)
    tuning_db.cli.add_commands(sub)
    return parser


def one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                     lineno: int, line: str | None = None) -> str:
    """A warning as the command prints it: ``autoconv: warning: ...``, one line, without
    the source file and line Python adds (a ``warnings.formatwarning``)."""
    text = " ".join(str(message).split()) or category.__name__
    return f"autoconv: warning: {text.removeprefix('autoconv: ')}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``autoconv`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from autoconv.settings import ENVIRONMENT_PROBLEMS, warn_about_environment

    if args.verbose:
        from autoconv.settings import configure_logging

        configure_logging("INFO")
    if ENVIRONMENT_PROBLEMS:  # the library carries on with defaults; a command does not
        print(f"autoconv: error: invalid setting: {ENVIRONMENT_PROBLEMS[0]}", file=sys.stderr)
        return 2
    formatwarning = warnings.formatwarning
    warnings.formatwarning = one_line_warning  # type: ignore[assignment]
    try:
        warn_about_environment()  # unknown AUTOCONV_* variables: a misspelt setting
        return int(args.handler(args) or 0)
    except (CommandError, TuningDBError) as error:
        print(f"autoconv: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autoconv: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `autoconv stats | head -1`: stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that flushing at exit raises nothing
        return 141
    finally:
        warnings.formatwarning = formatwarning


if __name__ == "__main__":
    sys.exit(main())
