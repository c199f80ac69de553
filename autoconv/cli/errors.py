"""The one error a command raises for a user mistake.

``autoconv``'s :func:`~autoconv.cli.main.main` prints a :class:`CommandError` (and any
:class:`tuning_db.TuningDBError`) as one line, ``autoconv: error: ...``, and exits with
status 2: no traceback for a mistake the user can fix.
"""

from __future__ import annotations


class CommandError(Exception):
    """A mistake in a command's arguments or inputs (a bad path, value or file)."""
