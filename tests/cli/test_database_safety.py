"""The database commands never act on a database the user did not mean (issue 27): a damaged
file's message names it with ``--db`` however it was configured, ``db reset`` says what it
moves and asks; ``import`` recognises a shapes file; ``stats`` shows the URL the user gave."""

from __future__ import annotations

import io
import json
import os
import shlex
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import tuning_db
from autoconv.cli import main
from tests.tuning_db.factories import make_device, make_measurement, make_signature
from tuning_db.urls import default_path, masked


class Terminal(io.StringIO):
    """A stdin that is a terminal, where the user types ``answer``."""

    def isatty(self) -> bool:
        return True


def filled(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tuning_db.connect(f"sqlite:///{path}") as db:
        db.record_many(make_device(), [make_measurement(make_signature(length=10 + n))
                                       for n in range(300)])
    with sqlite3.connect(path) as connection:  # fold the WAL into the file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def damaged(path: Path) -> Path:
    """A database whose header is intact and whose pages are not (SQLite finds out)."""
    data = bytearray(filled(path).read_bytes())
    data[4096:] = os.urandom(len(data) - 4096)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("configured", ["--db", "AUTOCONV_DB_URL", "default"])
def test_a_damaged_file_names_itself_in_the_command_that_moves_it(
        tmp_path: Path, configured: str, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    healthy = filled(default_path())  # the user's own default database, in good health
    path = default_path() if configured == "default" else damaged(tmp_path / "x.sqlite3")
    if configured == "default":
        healthy = filled(tmp_path / "other.sqlite3")  # some other healthy database
        damaged(path)
    args = ["stats"]
    if configured == "--db":
        args += ["--db", f"sqlite:///{path}"]
    elif configured == "AUTOCONV_DB_URL":
        monkeypatch.setenv("AUTOCONV_DB_URL", f"sqlite:///{path}")
    assert main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"autoconv: error: {path} is damaged")
    command = line.split("move it aside with: ")[1]
    assert command == f"autoconv db reset --backup --db {shlex.quote(f'sqlite:///{path}')}"

    monkeypatch.delenv("AUTOCONV_DB_URL", raising=False)  # another shell, another day
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    before = healthy.read_bytes()
    assert main(shlex.split(command)[1:]) == 0  # run exactly as suggested
    assert not path.exists() and len(list(path.parent.glob(f"{path.name}.*.bak"))) == 1
    assert healthy.read_bytes() == before


def test_reset_says_what_it_moves_and_asks_first(tmp_path: Path, capsys,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = filled(tmp_path / "tuning.sqlite3")
    url = f"sqlite:///{path}"
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert main(["db", "reset", "--backup", "--db", url]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"move the tuning database {path} aside to ")
    assert f"nothing was moved; {path} is unchanged" in captured.out
    assert path.exists() and not list(tmp_path.glob("*.bak"))

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a script: no terminal to ask on
    assert main(["db", "reset", "--backup", "--db", url]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"autoconv: error: db reset would move {path} to ")
    assert line.endswith("add --yes to move it") and path.exists()

    assert main(["db", "reset", "--backup", "--yes", "--db", url]) == 0
    assert f"moved {path} to " in capsys.readouterr().out and not path.exists()


@pytest.mark.parametrize("name,text", [
    ("shapes.json", json.dumps([{"input_shape": [1, 2, 300], "weight_shape": [2, 2, 3]}])),
    ("recorded.json", json.dumps({"version": 1, "signatures": [
        {"batch": 1, "in_channels": 2, "out_channels": 2, "length": 300, "kernel_size": 3}]})),
    ("shapes.yaml", "- input_shape: [1, 2, 300]\n  weight_shape: [2, 2, 3]\n")])
def test_importing_a_shapes_file_says_which_command_takes_it(tmp_path: Path, name: str,
                                                             text: str, capsys) -> None:
    shapes = tmp_path / name
    shapes.write_text(text)
    database = tmp_path / "tuning.sqlite3"
    assert main(["import", str(shapes), "--db", f"sqlite:///{database}"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (f"autoconv: error: {shapes} is a shapes file (signatures to measure), not "
                    f"a tuning bundle: measure them with: autoconv warm --shapes {shapes}")
    assert not database.exists()


def test_stats_shows_the_url_the_user_gave(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{filled(tmp_path / 'tuning.sqlite3')}"
    assert main(["stats", "--db", url]) == 0
    assert capsys.readouterr().out.startswith(f"{url}: 1 devices, ")


@pytest.mark.postgres
def test_stats_shows_the_server_url_as_given_with_its_password_masked(pg_schema_url,
                                                                      capsys) -> None:
    given = make_url(pg_schema_url()).set(drivername="postgresql", password="s3cret")
    url = given.render_as_string(hide_password=False)  # what the user typed
    tuning_db.connect(url).close()
    assert main(["stats", "--db", url]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"{masked(url)}: 0 devices, ")
    assert "s3cret" not in first and "psycopg" not in first and "timeout" not in first
