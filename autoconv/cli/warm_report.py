"""What ``autoconv warm`` says around its measuring: that its database takes writes (before),
then the summary line, the signatures it skipped and why, and where the measurements its
database did not take were kept (after).

Torch is imported only inside the functions that need it.
"""

from __future__ import annotations

import shlex
import sys
from typing import TYPE_CHECKING, TextIO

from autoconv.cli.errors import CommandError
from tuning_db.errors import TuningDBError
from tuning_db.urls import default_url, masked

if TYPE_CHECKING:
    from autoconv.offline.warm import WarmReport

#: Skipped signatures listed one per line at most; the rest are counted.
SKIPPED_SHOWN = 10


def check_database(device: str) -> None:
    """Make sure the configured tuning database (none when ``settings.persist`` is off) can
    be reached and written, before anything is measured.

    Raises:
        CommandError: it cannot (one line, naming it).
    """
    import torch

    from autoconv.offline.unsaved import check_writable
    from autoconv.settings import settings
    from autoconv.storage.store import open_default_store

    store = open_default_store(settings)
    if store is None:
        return
    try:
        check_writable(store, torch.device(device))
    except TuningDBError as error:
        raise CommandError(f"{error} (nothing was measured)") from None
    finally:
        store.close()


def summary(report: WarmReport) -> str:
    """``warmed 9/28 signatures (8 measured, 1 measured again, 0 already known, 1 skipped)
    in 12.3 s; 18 left: ...``: the counts add up to the signatures done."""
    visited = len(report.visited) + report.already
    counts = [f"{report.measured - report.remeasured} measured"]
    if report.remeasured:
        counts.append(f"{report.remeasured} measured again")
    counts.append(f"{visited - report.measured} already known")
    if report.skipped:
        counts.append(f"{len(report.skipped)} skipped")
    left = report.total - visited - len(report.skipped)
    rest = "" if report.complete else (
        f"; {left} left: run the same command again to continue")
    return (f"warmed {visited}/{report.total} signatures ({', '.join(counts)}) in "
            f"{report.seconds:.1f} s{rest}")


def print_skipped(report: WarmReport, stream: TextIO | None = None) -> None:
    """One line per skipped signature saying why (the first :data:`SKIPPED_SHOWN`)."""
    stream = stream if stream is not None else sys.stdout
    for signature, why in report.skipped[:SKIPPED_SHOWN]:
        print(f"skipped {signature.short()}: {why}", file=stream)
    more = len(report.skipped) - SKIPPED_SHOWN
    if more > 0:
        print(f"... and {more} more skipped", file=stream)


def finish(report: WarmReport, db_url: str | None) -> int:
    """Print what a warm did; its exit status (130 when interrupted).

    Raises:
        CommandError: measurements could not be stored (they are kept in a bundle file
            when the database failed, and the message says where and how to import it), or
            every signature was skipped.
    """
    print_skipped(report)
    print(summary(report))
    if report.interrupted:
        return 130
    if report.unsaved:
        raise _unsaved(report, masked(db_url or default_url()))
    if report.skipped and not report.visited and not report.already:
        raise CommandError(f"nothing could be warmed: all {len(report.skipped)} signature(s) "
                           "were skipped (the reasons are above)")
    return 0


def _unsaved(report: WarmReport, where: str) -> CommandError:
    from autoconv.offline.unsaved import write_bundle

    lost = (f"the measurements of {report.unsaved} of {report.measured} measured signatures "
            f"could not be stored in {where}")
    if not report.kept:
        return CommandError(lost)
    try:
        path = write_bundle(report.kept)
    except OSError as error:
        return CommandError(f"{lost}, nor written to a bundle file ({error.strerror or error})")
    return CommandError(f"{lost}; they are kept in {path}: once the database works again, add "
                        f"them with: autoconv import {shlex.quote(str(path))} "
                        f"--db {shlex.quote(where)}")
