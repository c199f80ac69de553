"""The tuning commands: autoconv select and autoconv warm, through the CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

import tuning_db
from autoconv import functional
from autoconv.cli import main


@pytest.fixture
def db_url(tmp_path: Path):
    yield f"sqlite:///{tmp_path / 'tuning.sqlite3'}"
    functional.reset()


def test_select_predicts_without_measuring(db_url: str, capsys) -> None:
    assert main(["select", "--input-shape", "2,1,96000", "--weight-shape", "1,1,8191",
                 "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "from cost_model" in out or "from predicted" in out
    with tuning_db.connect(db_url) as db:
        assert list(db.measurements()) == []


def test_select_tune_measures_and_stores(db_url: str, capsys) -> None:
    args = ["select", "--input-shape", "1,2,3000", "--weight-shape", "2,2,101", "--db", db_url,
            "--budget", "0.3"]
    assert main([*args, "--mode", "tune"]) == 0
    assert "from measured" in capsys.readouterr().out
    functional.reset()
    assert main(args) == 0
    assert "from database" in capsys.readouterr().out


def test_select_reports_bad_arguments_in_one_line(db_url: str, capsys) -> None:
    status = main(["select", "--input-shape", "1,2,100", "--weight-shape", "1,3,5",
                   "--db", db_url])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("autoconv: error:") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["select", "--input-shape", "1,x,100", "--weight-shape", "1,1,5"])


def test_warm_tunes_the_suite_and_resumes(db_url: str, capsys) -> None:
    args = ["warm", "--suite", "--only", "tiny_many_batch", "--db", db_url, "--budget", "0.3"]
    assert main(args) == 0
    assert "1 measured" in capsys.readouterr().out
    functional.reset()
    assert main(args) == 0
    assert "0 measured, 1 already known" in capsys.readouterr().out


def test_warm_unknown_workload_is_a_one_line_error(db_url: str, capsys) -> None:
    assert main(["warm", "--suite", "--only", "no_such_workload", "--db", db_url]) == 2
    assert "no_such_workload" in capsys.readouterr().err
