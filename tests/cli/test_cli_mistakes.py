"""Every mistake a user can make at the command line is one line and exit status 2, never a
traceback; configuration read from the environment included (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tuning_db

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None, code: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "autoconv",
                                                          *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'tuning.sqlite3'}"
    tuning_db.connect(url).close()
    return url


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("AUTOCONV_MODE", "bogus", "AUTOCONV_MODE='bogus': Input should be 'tune', 'live', 'predict' or 'off'"),
    ("AUTOCONV_BUDGET_S", "abc", "AUTOCONV_BUDGET_S='abc': Input should be a valid number")])
def test_an_invalid_environment_variable_is_one_line_naming_it(db_url: str, variable: str,
                                                               value: str, expected: str
                                                               ) -> None:
    line = one_line_error(run("stats", "--db", db_url, env={variable: value}))
    assert line.startswith(f"autoconv: error: invalid setting: {expected}")


def test_the_library_carries_on_with_the_default_and_warns_once() -> None:
    code = ("import warnings, torch, autoconv\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    for _ in range(3):\n"
            "        autoconv.conv1d(torch.ones(1, 1, 50), torch.ones(1, 1, 3))\n"
            "print(autoconv.settings.mode, sum('AUTOCONV_MODE' in str(w.message) "
            "for w in caught))\n")
    result = run(code=code, env={"AUTOCONV_MODE": "bogus", "AUTOCONV_PERSIST": "false"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["tune", "1"]


@pytest.mark.parametrize(("device", "expected"), [
    ("gpu", "'gpu' is not a device (expected cpu, cuda or cuda:N)"),
    ("mps", "autoconv tunes on cpu or cuda, not mps"),
    pytest.param("cuda", "this torch build has no CUDA", marks=pytest.mark.skipif(
        torch.version.cuda is not None, reason="a CUDA build of torch")),
    pytest.param("cuda:7", "there is no CUDA device 7", marks=pytest.mark.skipif(
        not torch.cuda.is_available() or torch.cuda.device_count() > 7,
        reason="needs a GPU, and fewer than 8"))])
def test_an_unavailable_device_is_one_line(db_url: str, device: str, expected: str) -> None:
    line = one_line_error(run("select", "--input-shape", "1,1,100", "--weight-shape", "1,1,3",
                              "--device", device, "--db", db_url))
    assert line.startswith("autoconv select: error: argument --device: ") and expected in line


@pytest.mark.skipif(torch.version.cuda is not None, reason="a CUDA build of torch")
def test_warm_on_cuda_without_cuda_is_one_line(db_url: str) -> None:
    line = one_line_error(run("warm", "--suite", "--device", "cuda", "--db", db_url))
    assert line.startswith("autoconv warm: error: argument --device: ")
    assert "this torch build has no CUDA" in line


def test_python_dash_m_autoconv_is_the_command() -> None:
    result = run("--help")
    assert result.returncode == 0 and "usage: autoconv" in result.stdout


def test_argument_mistakes_are_one_line_with_a_pointer_to_help(db_url: str) -> None:
    line = one_line_error(run("select", "--input-shape", "1,1,100", "--weight-shape", "1,1,3",
                              "--padding", "middle", "--db", db_url))
    assert "--padding: expected an integer, 'same' or 'valid', got 'middle'" in line
    assert line.endswith("(see autoconv select --help)")
    assert one_line_error(run("bogus")).startswith("autoconv: error: argument COMMAND")


def test_a_report_into_an_existing_file_is_one_line(tmp_path: Path, db_url: str) -> None:
    existing = tmp_path / "report.txt"
    existing.write_text("mine")
    line = one_line_error(run("report", "--out", str(existing), "--db", db_url))
    assert line == f"autoconv: error: --out {existing} exists and is not a folder"
    assert existing.read_text() == "mine"


def test_a_closed_pipe_ends_the_command_quietly(db_url: str) -> None:
    code = ("import os, sys\n"
            "read, write = os.pipe()\n"
            "os.close(read)\n"
            "os.dup2(write, 1)  # stdout is a pipe nobody reads: `autoconv stats | head -0`\n"
            "from autoconv.cli import main\n"
            f"sys.exit(main(['stats', '--db', {db_url!r}]))\n")
    result = run(code=code)
    assert result.returncode == 141 and result.stderr == ""
