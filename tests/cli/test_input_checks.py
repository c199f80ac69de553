"""The user's input is checked, and blamed, before anything else is (issue 27): a size out of
range is one line naming the option and the range, never a database failure; a misspelt
``AUTOCONV_*`` variable is one warning naming the one meant."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import tuning_db
from autoconv.cli import main
from autoconv.runtime.dispatch import dispatcher
from autoconv.settings import known_variables, unknown_variables
from autoconv.signature import Signature
from autoconv.storage.guarded import GuardedStore
from autoconv.storage.store import TuningStore
from autoconv.strategies import reference
from autoconv.tuning.candidates import Candidate
from autoconv.tuning.outcome import Outcome

REPO = Path(__file__).resolve().parents[2]
#: A misspelt setting, spelt out here only (so that the scan of the repository skips it).
MISSPELT = "AUTOCONV_" + "MOD"


@pytest.fixture
def db_url(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'tuning.sqlite3'}"
    tuning_db.connect(url).close()  # an existing, healthy database
    yield url
    dispatcher.reset()


@pytest.mark.parametrize(("args", "expected"), [
    (["--input-shape", "1,1,10000000000", "--weight-shape", "1,1,3"],
     "--input-shape: length 10000000000 is out of range (allowed: 1 to 2147483647)"),
    (["--input-shape", "1,1,100", "--weight-shape", "1,1,3", "--stride", "3000000000"],
     "--stride: stride 3000000000 is out of range (allowed: 1 to 2147483647)")])
def test_a_size_out_of_range_is_the_input_s_fault_in_one_line(db_url: str, args: list[str],
                                                              expected: str, capsys) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["select", *args, "--db", db_url]) == 2
    assert [str(w.message) for w in caught] == []
    assert capsys.readouterr().err == f"autoconv: error: {expected}\n"


def test_a_decision_the_database_cannot_hold_is_no_database_failure(db_url: str,
                                                                    capsys) -> None:
    # 2e9 samples are within range, but the bucket they share is not (over 2**31 - 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["select", "--input-shape", "1,1,2000000000", "--weight-shape", "1,1,3",
                     "--db", db_url]) == 0
    assert [str(w.message) for w in caught] == []
    assert "from cost_model" in capsys.readouterr().out


def test_the_guarded_store_neither_blames_nor_rests_the_database_for_it(db_url: str) -> None:
    store = GuardedStore(TuningStore(db_url), retry_s=30.0)
    cpu = torch.device("cpu")
    huge = Signature(1, 1, 1, 2**31, 3, 1, 0, 0, 1, 1, "float32", "cpu")
    outcome = Outcome(Candidate(reference(), ()), 1e-3, samples=5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert list(store.candidates(huge, cpu)) == [] and list(store.failures(huge, cpu)) == []
        assert store.record(huge, cpu, [outcome]) is False
        with store.lease(huge, cpu) as granted:
            assert granted
    assert [str(w.message) for w in caught] == [] and store.available
    store.close()


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autoconv", *args], check=False,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})


def test_a_misspelt_setting_is_one_warning_naming_the_one_meant(db_url: str) -> None:
    result = run("stats", "--db", db_url, env={MISSPELT: "predict"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == (f"autoconv: warning: ignoring unknown environment variable "
                             f"{MISSPELT} (did you mean AUTOCONV_MODE?)\n")


def test_the_library_warns_once_about_it() -> None:
    code = ("import warnings, torch, autoconv\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    for _ in range(3):\n"
            "        autoconv.conv1d(torch.ones(1, 1, 50), torch.ones(1, 1, 3))\n"
            f"print(sum('{MISSPELT} (did you mean AUTOCONV_MODE?)' in str(w.message) "
            "for w in caught))\n")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO),
                                              MISSPELT: "predict", "AUTOCONV_PERSIST": "0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1"]


def test_the_variables_autoconv_reads_are_never_warned_about(db_url: str) -> None:
    result = run("stats", "--db", db_url, env={
        "AUTOCONV_TEST_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x",
        "AUTOCONV_LOG_LEVEL": "WARNING", "AUTOCONV_MODEL_DIR": "/nonexistent",
        "autoconv_tie_margin": "0.05"})  # the settings are read whatever their case
    assert result.returncode == 0 and result.stderr == ""


def test_every_autoconv_variable_the_project_names_is_known() -> None:
    named = set()
    for folder in ("autoconv", "tuning_db", "tests", "scripts", ".ci", "docs"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and path.suffix in ("", ".py", ".md", ".sh", ".toml", ".yml"):
                named |= set(re.findall(r"AUTOCONV_[A-Z][A-Z0-9_]*",
                                        path.read_text(errors="replace")))
    assert named and unknown_variables(dict.fromkeys(named, "")) == []
    assert {"AUTOCONV_TEST_DATABASE_URL", "AUTOCONV_DB_URL"} <= known_variables()
