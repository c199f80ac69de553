"""Damaged files, foreign and old/new schemas, locks: clear errors, and data never dropped."""

from __future__ import annotations

import os
import shlex
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

import tuning_db
from tests.tuning_db.factories import make_device, make_measurement, make_signature
from tuning_db import errors, migrate, sqlite_safety
from tuning_db.cli import main
from tuning_db.engine import ORPHAN_AGE_S, make_engine
from tuning_db.store import open_engine
from tuning_db.urls import masked, parse_url


def _filled_database(path: Path, rows: int = 300) -> bytes:
    with tuning_db.connect(f"sqlite:///{path}") as db:
        db.record_many(make_device(), [make_measurement(make_signature(length=10 + n))
                                       for n in range(rows)])
    with sqlite3.connect(path) as connection:  # fold the WAL into the file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()


def _refused(path: Path, error_type: type[Exception]) -> str:
    before = path.read_bytes()
    with pytest.raises(error_type) as raised:
        tuning_db.connect(f"sqlite:///{path}")
    assert path.read_bytes() == before, "a refused file must be left exactly as it was"
    message = str(raised.value)
    assert str(path) in message and "\n" not in message
    return message


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "random.sqlite3"
    path.write_bytes(os.urandom(8192))
    assert "not an SQLite database" in _refused(path, errors.DatabaseCorruptError)


def test_empty_file_is_refused_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    path.touch()
    assert "autoconv db reset --backup" in _refused(path, errors.DatabaseCorruptError)


@pytest.mark.parametrize("keep", [50, 4096, 0.5])
def test_truncated_file_is_refused(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "truncated.sqlite3"
    data = _filled_database(path)
    path.write_bytes(data[:int(len(data) * keep) if isinstance(keep, float) else keep])
    assert "truncated" in _refused(path, errors.DatabaseCorruptError)


def test_damaged_pages_are_reported_with_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "damaged.sqlite3"
    data = bytearray(_filled_database(path))
    data[4096:] = os.urandom(len(data) - 4096)  # keep the header, scramble every other page
    path.write_bytes(bytes(data))
    with pytest.raises(errors.DatabaseCorruptError, match=str(path)):
        with tuning_db.connect(f"sqlite:///{path}") as db:
            list(db.measurements())


def test_a_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    message = _refused(path, errors.ForeignSchemaError)
    assert "not an autoconv tuning database" in message and "invoices" in message


def test_another_applications_alembic_database_is_not_called_newer(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        connection.execute("INSERT INTO alembic_version VALUES ('ae1027a6acf')")
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    message = _refused(path, errors.ForeignSchemaError)
    assert "not an autoconv tuning database" in message and "users" in message
    assert "upgrade autoconv" not in message


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
def test_a_database_that_cannot_be_created_there_is_one_line_naming_it(capsys) -> None:
    path = Path("/proc/autoconv-tuning.sqlite3")  # no one, root included, creates files here
    with pytest.raises(errors.TuningDBError) as raised:
        tuning_db.connect(f"sqlite:///{path}")
    message = str(raised.value)
    assert str(path) in message and "\n" not in message
    assert main(["stats", "--db", f"sqlite:///{path}"]) == 2  # stats never creates one
    assert main(["db", "info", "--db", f"sqlite:///{path}"]) == 2


def _set_revision(url: str, revision: str) -> None:
    engine, _, _ = open_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    engine.dispose()


def test_a_newer_schema_is_refused_and_left_alone(db_url: str) -> None:
    with tuning_db.connect(db_url) as db:
        db.record(make_device(), make_measurement())
    _set_revision(db_url, "9999")
    with pytest.raises(errors.SchemaTooNewError, match="newer than this autoconv"):
        tuning_db.connect(db_url)
    assert main(["db", "upgrade", "--db", db_url]) == 2
    _set_revision(db_url, tuning_db.SCHEMA_VERSION)
    with tuning_db.connect(db_url) as db:
        assert len(list(db.measurements())) == 1


def test_an_older_schema_names_the_upgrade_command_and_upgrades_keeping_rows(
        db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = make_engine(parse_url(db_url))  # an empty database, built up to schema 0001
    migrate.stamp_to(engine, "0001")
    device = make_device()
    with engine.begin() as connection:  # a row as the 0001 schema stored it (no ok / note)
        connection.execute(text(
            "INSERT INTO devices (device_id, cpu_model, cpu_cores, torch_threads, torch_version,"
            " autoconv_version, first_seen) VALUES (:id, :cpu, 8, 4, :torch, '0.0.9', "
            "'2026-01-01 00:00:00')"),
            {"id": device.device_id, "cpu": device.cpu_model, "torch": device.torch_version})
        connection.execute(text(
            "INSERT INTO measurements (device_id, sig_key, strategy, params, batch, in_channels,"
            " out_channels, length, kernel_size, stride, padding_left, padding_right, dilation,"
            " groups, dtype, device, requires_grad, median_s, spread_s, samples, error,"
            " measured_at, autoconv_version) VALUES (:id, :key, 'fft', '{}', 4, 16, 32, 4096,"
            " 129, 1, 64, 64, 1, 1, 'float32', 'cpu', false, 0.002, 0.0, 7, NULL,"
            " '2026-01-01 00:00:00', '0.0.9')"),
            {"id": device.device_id, "key": make_signature().key})
    engine.dispose()

    with pytest.raises(errors.SchemaTooOldError) as raised:
        tuning_db.connect(db_url)
    assert str(raised.value).endswith(
        f"upgrade it with: autoconv db upgrade --db {shlex.quote(masked(db_url))}")
    # configured by the environment, not a flag: the command still names this database
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("AUTOCONV_DB_URL", db_url)
        with pytest.raises(errors.SchemaTooOldError) as raised:
            tuning_db.connect()
    assert str(raised.value).endswith(f"--db {shlex.quote(masked(db_url))}")

    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert f"from schema 0001 to {tuning_db.SCHEMA_VERSION}" in capsys.readouterr().out
    with tuning_db.connect(db_url) as db:
        best = db.best(device.device_id, make_signature())
        assert best == tuning_db.BestChoice(strategy="fft", params={}, median_s=0.002, samples=7)
    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert f"already at schema {tuning_db.SCHEMA_VERSION}" in capsys.readouterr().out


def test_reset_moves_the_file_aside_and_a_new_one_is_made(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    path = tmp_path / "tuning.sqlite3"
    path.write_bytes(b"this used to be a database")
    url = f"sqlite:///{path}"
    assert main(["db", "reset", "--db", url]) == 2  # --backup is required
    assert path.exists()
    assert main(["db", "reset", "--backup", "--db", url]) == 2  # not a terminal: say --yes
    assert path.exists()
    assert main(["db", "reset", "--backup", "--yes", "--db", url]) == 0
    [backup] = tmp_path.glob("tuning.sqlite3.*.bak")
    assert backup.read_bytes() == b"this used to be a database"
    assert str(backup) in capsys.readouterr().out
    with tuning_db.connect(url) as db:
        assert db.stats().measurements == 0


def test_reading_commands_do_not_create_a_database(tmp_path: Path) -> None:
    path = tmp_path / "missing.sqlite3"
    with pytest.raises(errors.DatabaseMissingError, match=str(path)):
        tuning_db.connect(f"sqlite:///{path}", create=False)
    assert not path.exists()


def test_a_held_lock_is_waited_for_not_raised(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.sqlite3'}"
    db = tuning_db.connect(url)
    blocker = sqlite3.connect(tmp_path / "busy.sqlite3", isolation_level=None,
                              check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(0.5, blocker.rollback)
    releaser.start()
    db.record(make_device(), make_measurement())  # waits for the lock, then writes
    releaser.join()
    assert db.best(make_device().device_id, make_signature()) == tuning_db.BestChoice(
        strategy="direct", params={}, median_s=1e-3, samples=10)
    db.close()
    blocker.close()


def test_a_lock_held_too_long_gives_a_clear_error(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_safety, "BUSY_TIMEOUT_S", 0.02)
    monkeypatch.setattr(sqlite_safety, "RETRY_DEADLINE_S", 0.3)
    path = tmp_path / "busy.sqlite3"
    db = tuning_db.connect(f"sqlite:///{path}")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(errors.DatabaseBusyError, match="stayed locked"):
        db.record(make_device(), make_measurement())
    assert time.monotonic() - started < 10
    blocker.rollback()
    db.record(make_device(), make_measurement())
    db.close()
    blocker.close()


def _dead_pid() -> int:
    """A pid that belongs to no running process (a child that has exited and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("database", ["missing", "existing"])
def test_temp_files_of_a_killed_creator_are_cleared_when_the_database_is_next_opened(
        tmp_path: Path, database: str) -> None:
    path = tmp_path / "tuning.sqlite3"
    if database == "existing":  # made by another creator meanwhile: still cleaned on open
        tuning_db.connect(f"sqlite:///{path}").close()
    old = time.time() - 2 * ORPHAN_AGE_S
    dead = _dead_pid()
    orphans = [tmp_path / f".tuning.sqlite3.{dead}.0123abcd.tmp{suffix}"
               for suffix in ("", "-wal", "-shm")]
    recent = tmp_path / f".tuning.sqlite3.{dead}.89abcdef.tmp"  # maybe a creator elsewhere
    alive = tmp_path / f".tuning.sqlite3.{os.getpid()}.00000000.tmp"  # a running creator
    unrelated = tmp_path / ".other.sqlite3.1.00000000.tmp"
    for file in [*orphans, recent, alive, unrelated]:
        file.write_bytes(b"half made")
        if file is not recent:
            os.utime(file, (old, old))
    tuning_db.connect(f"sqlite:///{path}").close()
    assert path.exists()
    assert not any(file.exists() for file in orphans)
    assert recent.exists() and alive.exists() and unrelated.exists()
