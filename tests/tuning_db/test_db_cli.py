"""The tuning-database commands, through ``autoconv.cli.main`` and as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tuning_db
from autoconv.cli import main
from tests.tuning_db.factories import make_device, make_measurement, make_signature

REPO = Path(__file__).resolve().parents[2]
AUTOCONV = Path(sys.executable).parent / "autoconv"


@pytest.fixture
def filled(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'filled.sqlite3'}"
    with tuning_db.connect(url) as db:
        db.record_many(make_device(), [
            make_measurement(make_signature(length=n), strategy=name, median_s=median)
            for n in (100, 200) for name, median in (("direct", 1e-3), ("fft", 2e-3))])
    return url


def test_info_and_stats(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "info", "--db", filled]) == 0
    out = capsys.readouterr().out
    assert f"schema version: {tuning_db.SCHEMA_VERSION}" in out and "measurements:   4" in out
    assert main(["stats", "--db", filled]) == 0
    out = capsys.readouterr().out
    assert f"| {make_device().device_id} | Test CPU @ 3.0GHz | 4 |" in out
    assert "| 4 | 2 | 0 | 0 (0) | direct 2 |" in out  # measurements, signatures, provisional,
    # wanted (measured)


def test_export_import_merge(filled: str, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    bundle_path = tmp_path / "out.json"
    assert main(["export", str(bundle_path), "--db", filled, "--winners-only"]) == 0
    assert json.loads(bundle_path.read_text())["format"] == "autoconv-tuning-bundle"
    assert "wrote 2 measurements" in capsys.readouterr().out
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    assert main(["import", str(bundle_path), "--db", target]) == 0
    assert "imported 2 measurements of 1 devices" in capsys.readouterr().out
    too_small = ["import", str(bundle_path), "--db", target, "--max-mb", "0.0001"]
    assert main(too_small) == 2 and "a bundle may have" in capsys.readouterr().err
    merged = f"sqlite:///{tmp_path / 'merged.sqlite3'}"
    assert main(["merge", filled, str(bundle_path), "--into", merged]) == 0
    with tuning_db.connect(merged) as db:
        assert db.stats().measurements == 4


def test_the_default_database_follows_the_environment(filled: str,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AUTOCONV_DB_URL", filled)
    assert main(["db", "info"]) == 0
    assert filled.removeprefix("sqlite:///") in capsys.readouterr().out


@pytest.mark.parametrize("argv, expected", [
    (["import", "/no/such/bundle.json"], "no such bundle file: /no/such/bundle.json"),
    (["stats", "--db", "not a url"], "not a database URL"),
    (["stats", "--db", "postgresql://nobody@127.0.0.1:1/none"],
     "cannot open the tuning database at postgresql://nobody@127.0.0.1:1/none"),
    (["stats", "--db", "postgresql://me:secret@127.0.0.1:1/none"], "me:***@"),
    (["db", "info", "--db", "sqlite:////no/such/dir/tuning.sqlite3"], "no tuning database at"),
    (["db", "reset", "--backup", "--db", "postgresql://x@127.0.0.1:1/y"], "SQLite files only"),
])
def test_user_mistakes_print_one_line_and_exit_2(argv: list[str], expected: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("autoconv: error: ") and expected in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert "secret" not in captured.err


def test_a_malformed_bundle_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"format": "autoconv-tuning-bundle", "version": 1}')
    assert main(["import", str(path), "--db", f"sqlite:///{tmp_path / 'db.sqlite3'}"]) == 2
    err = capsys.readouterr().err
    assert "is not a valid tuning bundle" in err and err.count("\n") == 1
    assert not (tmp_path / "db.sqlite3").exists()  # validated before the database was opened


def _run(*args: str, env_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if env_url:
        env["AUTOCONV_DB_URL"] = env_url
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def test_the_installed_command_runs_without_importing_torch(filled: str) -> None:
    result = _run(str(AUTOCONV), "stats", "--db", filled)
    assert result.returncode == 0, result.stderr
    assert "4 measurements" in result.stdout
    probe = ("import sys; from autoconv.cli import main; code = main(['db', 'info']); "
             "print('torch' in sys.modules, code)")
    result = _run(sys.executable, "-c", probe, env_url=filled)
    assert result.stdout.strip().splitlines()[-1] == "False 0", result.stderr


def test_python_dash_m_tuning_db(filled: str, tmp_path: Path) -> None:
    result = _run(sys.executable, "-m", "tuning_db", "db", "info", "--db", filled)
    assert result.returncode == 0 and "measurements:   4" in result.stdout
    result = _run(sys.executable, "-m", "tuning_db", "import", str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"python -m tuning_db: error: no such bundle file: "
                                     f"{tmp_path / 'nope.json'}")
