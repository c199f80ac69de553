"""The errors a user of the tuning database can cause or meet.

Every one derives from :class:`TuningDBError`, whose message is a single line that names the
file or URL involved (with any password masked), so that the ``autoconv`` command can print it
without a traceback.
"""

from __future__ import annotations


class TuningDBError(Exception):
    """Base of every user-facing tuning-database problem; ``str(error)`` is one clear line."""


class BadURLError(TuningDBError, ValueError):
    """The database URL cannot be parsed, or names a driver that is not installed."""


class ConnectionFailedError(TuningDBError, ConnectionError):
    """The database server cannot be reached, or the file cannot be opened or created."""


class DatabaseMissingError(TuningDBError, FileNotFoundError):
    """A command that only reads was pointed at a database that does not exist."""


class DatabaseCorruptError(TuningDBError):
    """The file is not a readable SQLite database (random bytes, truncated, empty)."""


class ForeignSchemaError(DatabaseCorruptError):
    """A readable database that holds tables, but not an autoconv tuning database's."""


class SchemaTooOldError(TuningDBError):
    """The database was written by an older autoconv; ``autoconv db upgrade`` updates it."""


class SchemaTooNewError(TuningDBError):
    """The database was written by a newer autoconv; this version refuses to touch it."""


class DatabaseBusyError(TuningDBError, TimeoutError):
    """Other writers held the database lock for longer than the bounded retry waited."""


class BundleError(TuningDBError, ValueError):
    """A bundle file is missing, too large, not JSON, or holds a record that fails validation."""
