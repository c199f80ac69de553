"""The tuning-database commands of ``autoconv`` (also ``python -m tuning_db`` without torch).

``add_commands(subparsers)`` adds ``db info``, ``db upgrade``, ``db reset --backup``,
``export``, ``import``, ``merge`` and ``stats``; each sets ``handler(args) -> int``. User
mistakes raise :class:`~tuning_db.errors.TuningDBError`, which the caller prints as one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuning_db import bundle, migrate
from tuning_db.errors import DatabaseMissingError, TuningDBError
from tuning_db.records import SETTLED_SAMPLES, Stats
from tuning_db.store import connect, open_engine
from tuning_db.upsert import WriteCounts
from tuning_db.urls import default_url, parse_url, sqlite_file


def db_option() -> argparse.ArgumentParser:
    """A parent parser with the ``--db URL`` option every command shares (``autoconv``'s own
    commands take it from here too)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--db", metavar="URL", default=None, help=(
        "SQLAlchemy URL of the tuning database (default: $AUTOCONV_DB_URL, else the SQLite "
        "file in the user cache directory)"))
    return parent


_MAX_MB: dict[str, Any] = dict(
    type=float, default=bundle.MAX_BUNDLE_BYTES / 2**20, metavar="MIB",
    help="refuse bundle files larger than this (default: %(default).0f MiB)")


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the tuning-database commands on an argparse ``subparsers`` object."""
    shared = db_option()
    db = subparsers.add_parser("db", help="inspect, upgrade or reset the tuning database")
    db_commands = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    db_commands.add_parser("info", parents=[shared], help="where the database is and what it "
                           "holds").set_defaults(handler=cmd_info)
    db_commands.add_parser("upgrade", parents=[shared], help="bring an older database to "
                           "this autoconv's schema").set_defaults(handler=cmd_upgrade)
    reset = db_commands.add_parser("reset", parents=[shared], help="move a damaged or "
                                   "unwanted SQLite file aside (never deletes it)")
    reset.add_argument("--backup", action="store_true", help="required: the file is renamed "
                       "to NAME.YYYYmmdd-HHMMSS.bak, and a new one is made on next use")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation "
                       "(required when stdin is not a terminal)")
    reset.set_defaults(handler=cmd_reset)

    export = subparsers.add_parser("export", parents=[shared],
                                   help="write measurements to a JSON bundle")
    export.add_argument("file", metavar="FILE")
    export.add_argument("--device", metavar="ID", help="only this device's measurements")
    export.add_argument("--winners-only", action="store_true",
                        help="only the winner of each (device, signature)")
    export.set_defaults(handler=cmd_export)

    importer = subparsers.add_parser("import", parents=[shared],
                                     help="validate a JSON bundle, then add it in one transaction")
    importer.add_argument("file", metavar="FILE")
    importer.add_argument("--max-mb", **_MAX_MB)
    importer.set_defaults(handler=cmd_import)

    merge = subparsers.add_parser("merge", parents=[shared], help=(
        "merge bundles and databases; the better-supported measurement wins"))
    merge.add_argument("sources", metavar="SRC", nargs="+", help="bundle file or database URL")
    merge.add_argument("--into", metavar="URL", help="target database (default: --db)")
    merge.add_argument("--max-mb", **_MAX_MB)
    merge.set_defaults(handler=cmd_merge)

    subparsers.add_parser("stats", parents=[shared], help=(
        "measurements, signatures and wins per device")).set_defaults(handler=cmd_stats)


def cmd_info(args: argparse.Namespace) -> int:
    """``autoconv db info``: location, schema version and counts."""
    with connect(args.db, create=False) as db:
        stats = db.stats()
    print(f"database:       {db.where}")
    print(f"schema version: {stats.schema_version} (current)")
    if stats.size_bytes is not None:
        print(f"size:           {stats.size_bytes / 2**20:.2f} MiB")
    print(f"devices:        {stats.devices}")
    print(f"signatures:     {stats.signatures}")
    print(f"measurements:   {stats.measurements}")
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    """``autoconv db upgrade``: apply the alembic migrations up to this version's schema."""
    engine, where, db_option = open_engine(args.db, create=False)
    try:
        before, after = migrate.upgrade(engine, where, db_option)
    finally:
        engine.dispose()
    if before == after:
        print(f"{where} is already at schema {after}")
    else:
        print(f"upgraded {where} from schema {before or 'none'} to {after}")
    return 0


def _backup_name(path: Path) -> Path:
    """``NAME.YYYYmmdd-HHMMSS.bak`` beside ``path``, one that does not exist yet."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.{stamp}.bak")
    counter = 1
    while backup.exists():
        backup = path.with_name(f"{path.name}.{stamp}-{counter}.bak")
        counter += 1
    return backup


def _confirmed(question: str) -> bool:
    """Ask ``question [y/N]`` on the terminal; whether the answer was yes."""
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_reset(args: argparse.Namespace) -> int:
    """``autoconv db reset --backup``: rename the SQLite file (and its WAL) aside, after
    saying which file and asking (``--yes``: without asking; required without a terminal)."""
    if not args.backup:
        raise TuningDBError("db reset only moves the database aside; say so with --backup "
                            "(nothing is ever deleted)")
    url = parse_url(args.db or default_url())
    path = sqlite_file(url)
    if path is None:
        raise TuningDBError(f"db reset works on SQLite files only; {url.get_backend_name()} "
                            "databases are managed on their server")
    path = path.absolute()
    if not path.exists():
        raise DatabaseMissingError(f"no tuning database at {path}; nothing to reset")
    backup = _backup_name(path)
    if not args.yes:
        interactive = sys.stdin is not None and sys.stdin.isatty()
        if not interactive:
            raise TuningDBError(f"db reset would move {path} to {backup.name}; stdin is not "
                                "a terminal to confirm it: add --yes to move it")
        if not _confirmed(f"move the tuning database {path} aside to {backup.name} "
                          "(a new, empty one is made on next use)?"):
            print(f"nothing was moved; {path} is unchanged")
            return 1
        backup = _backup_name(path)  # time passed while asking
    try:
        path.rename(backup)
        for suffix in ("-wal", "-shm"):
            companion = Path(f"{path}{suffix}")
            if companion.exists():
                companion.rename(Path(f"{backup}{suffix}"))
    except OSError as error:
        raise TuningDBError(f"cannot move {path} aside: {error.strerror or error}") from None
    print(f"moved {path} to {backup}; a new database is created on next use")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``autoconv export FILE``: write a bundle."""
    with connect(args.db, create=False) as db:
        count = bundle.export_bundle(db, args.file, args.device, args.winners_only)
    print(f"wrote {count} measurements to {args.file}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``autoconv import FILE``: validate a bundle, then write it in one transaction."""
    loaded = bundle.load(args.file, int(args.max_mb * 2**20))  # before opening the database
    with connect(args.db) as db:
        counts = bundle.write(db, loaded)
        print(f"imported {counts.total} measurements of {len(loaded.devices)} devices from "
              f"{args.file} into {db.where}: {describe(counts)}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """``autoconv merge SRC...``: merge bundles and databases into one database."""
    with connect(args.into or args.db) as db:
        counts = bundle.merge(args.sources, db, int(args.max_mb * 2**20))
        for source, count in counts.items():
            print(f"merged {count.total} measurements from {source}: {describe(count)}")
        print(f"into {db.where}")
    return 0


def describe(counts: WriteCounts) -> str:
    """'3 new, 1 updated, 2 unchanged' (unchanged: the stored row was better supported)."""
    return f"{counts.new} new, {counts.updated} updated, {counts.unchanged} unchanged"


def format_stats(stats: Stats) -> str:
    """The stats as a markdown table, one row per device."""
    lines = [f"{stats.url}: {stats.devices} devices, {stats.signatures} signatures, "
             f"{stats.measurements} measurements", "",
             "| device | cpu / gpu | threads | torch | measurements | signatures "
             "| provisional | wanted (measured) | wins |",
             "|---|---|---:|---|---:|---:|---:|---:|---|"]
    for item in stats.per_device:
        device = item.device
        hardware = device.gpu_name or device.cpu_model
        wins = ", ".join(f"{name} {count}" for name, count in sorted(item.wins.items()))
        lines.append(f"| {device.device_id} | {hardware} | {device.torch_threads} | "
                     f"{device.torch_version} | {item.measurements} | {item.signatures} | "
                     f"{item.provisional} | {item.wanted} ({item.wanted_measured}) | "
                     f"{wins or '-'} |")
    if any(item.provisional for item in stats.per_device):
        lines += ["", f"provisional: the winner was timed fewer than {SETTLED_SAMPLES} times "
                      "(a first call within its budget) or on a busy machine; 'autoconv warm' "
                      "on the same signatures measures them again when that can settle them "
                      "(a busy machine's, once it is quiet)"]
    if any(item.wanted for item in stats.per_device):
        lines += ["", "wanted: signatures processes answered without a measurement (mode "
                      "predict), noted for 'autoconv warm --wanted' on a machine of the same "
                      "fingerprint; in parentheses, how many of them are measured now"]
    return "\n".join(lines)


def cmd_stats(args: argparse.Namespace) -> int:
    """``autoconv stats``: per-device counts and wins."""
    with connect(args.db, create=False) as db:
        print(format_stats(db.stats()))
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "python -m tuning_db") -> int:
    """Run the tuning-database commands alone (for machines without torch)."""
    parser = argparse.ArgumentParser(prog=prog, description="autoconv's tuning database.")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except TuningDBError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
