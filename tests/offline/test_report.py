"""autoconv report: the PNG charts and the markdown summary, from a database we fill."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tuning_db
from autoconv.cli import main
from autoconv.runtime.dispatch import dispatcher
from autoconv.storage.store import device_record

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fill(db_url: str, count: int) -> None:
    """``count`` signatures, each with direct and fft timed; fft wins on long kernels."""
    rows = []
    for index in range(count):
        kernel = 2 ** (1 + index % 12)
        signature = tuning_db.SignatureRecord(
            batch=4, in_channels=1 + index % 3, out_channels=1 + index % 3,
            length=8192 + index, kernel_size=kernel, stride=1, padding_left=0,
            padding_right=0, dilation=1, groups=1, dtype="float32", device="cpu")
        direct_s = 1e-6 * kernel
        fft_s = 1e-4
        for strategy, seconds in (("direct", direct_s), ("fft", fft_s)):
            rows.append(tuning_db.MeasurementRecord(
                signature=signature, strategy=strategy, median_s=seconds, samples=5,
                autoconv_version="test"))
    with tuning_db.connect(db_url) as db:
        db.record_many(device_record(torch.device("cpu")), rows)


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AUTOCONV_MODEL_DIR", str(tmp_path / "models"))
    yield f"sqlite:///{tmp_path / 'tuning.sqlite3'}"
    dispatcher.reset()


def test_report_writes_valid_pngs_and_a_summary(db_url: str, tmp_path: Path, capsys) -> None:
    fill(db_url, 30)
    out = tmp_path / "report"
    assert main(["report", "--out", str(out), "--db", db_url, "--channels", "1,4"]) == 0
    for name in ("winners_map.png", "speedup.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    text = (out / "report.md").read_text()
    assert "signatures tuned: 30" in text
    # kernels 2^(1 + i % 12): fft (1e-4 s) wins from 128 taps on, 6 of each 12 (i % 12 >= 6),
    # so 12 of 30 (i = 0..29 holds two whole cycles and then i % 12 = 0..5)
    assert "| direct | 18 | 60% |" in text and "| fft | 12 | 40% |" in text
    assert "| overlap_add | 0 | 0% |" in text
    assert "![winners map](winners_map.png)" in text
    assert "held-out signatures" in text  # the predictor was cross-validated
    # the regret is explained where it is printed, and each picker's worst pick named:
    # always F.conv1d is worst at K=4096 (4.096 ms against fft's 0.1 ms)
    assert "**Regret** of a pick: the measured time of the candidate a picker chose" in text
    worst = next(line for line in text.splitlines() if line.startswith("| F.conv1d | 40.96 |"))
    assert "K=4096" in worst and worst.endswith("| F.conv1d 4.1 ms | fft 0.1 ms |")
    # each picker's worst pick is the worst regret its row of the first table prints
    table = text[text.index("**All signatures**"):text.index("**Single-channel")]
    in_table = {row.split(" | ")[0].strip("| "): row.split(" | ")[7]
               for row in table.splitlines() if row.startswith("| ") and "---" not in row
               and not row.startswith("| picker")}
    named = {row.split(" | ")[0].strip("| "): row.split(" | ")[1]
             for row in text[text.index("| picker | worst regret"):].splitlines()[2:]
             if row.startswith("| ")}
    assert in_table == named and "learned" in named
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / n) for n in ("winners_map.png", "speedup.png", "report.md")]


def test_report_speedups_come_from_the_measurements(db_url: str, tmp_path: Path) -> None:
    fill(db_url, 12)
    assert main(["report", "--out", str(tmp_path), "--db", db_url, "--channels", "1"]) == 0
    text = (tmp_path / "report.md").read_text()
    # kernels 2..4096: fft (1e-4 s) beats direct (1e-6 * K s) from K=128 up: 6 of 12
    assert "another strategy beats F.conv1d: 6" in text
    assert "largest 41.0x" in text  # 4096e-6 / 1e-4
    assert "not evaluated" in text  # fewer than 20 signatures


def test_report_without_measurements_is_a_one_line_error(db_url: str, tmp_path: Path,
                                                          capsys) -> None:
    with tuning_db.connect(db_url):
        pass
    assert main(["report", "--out", str(tmp_path), "--db", db_url]) == 2
    assert "no measurements for this device" in capsys.readouterr().err


def _measure(db_url: str, batch: int, length: int, kernel: int, times: dict[str, float]
             ) -> None:
    signature = tuning_db.SignatureRecord(
        batch=batch, in_channels=1, out_channels=1, length=length, kernel_size=kernel,
        stride=1, padding_left=0, padding_right=0, dilation=1, groups=1, dtype="float32",
        device="cpu")
    with tuning_db.connect(db_url) as db:
        db.record_many(device_record(torch.device("cpu")), [
            tuning_db.MeasurementRecord(signature=signature, strategy=strategy,
                                        median_s=seconds, samples=5, autoconv_version="test")
            for strategy, seconds in times.items()])


def test_each_map_cell_says_where_its_winner_came_from(db_url: str, tmp_path: Path) -> None:
    from autoconv.buckets import decision_key
    from autoconv.offline import report_data
    from autoconv.offline import report_map as report
    from autoconv.settings import settings

    # the map cell itself (batch 4, length 1024, K 8; stored under its length bucket),
    # measured with an implausible winner
    bucketed = decision_key(report.map_signature(1, 1024, 8, "cpu"), settings).length
    _measure(db_url, 4, bucketed, 8, {"direct": 1e-3, "fft": 1e-4})
    # a signature one batch octave and half a length octave from cell (K 2, length 2048),
    # where the cost model says direct: the measurement (fft) is drawn, the pick reported
    _measure(db_url, 8, 2900, 2, {"direct": 1e-3, "fft": 1e-4})
    # near the K 4 cells of length 16k and 32k, two octaves from that of 4k
    _measure(db_url, 4, 4096 * 4 + 1000, 4, {"direct": 1e-3, "fft": 1e-4})
    with settings.override(db_url=db_url, persist=True):
        dispatcher.reset()
        with tuning_db.connect(db_url) as db:
            device_id = device_record(torch.device("cpu")).device_id
            tuned = report_data.tuned_signatures(m for _, m in db.measurements(device_id))
        cells = report.map_cells(1, torch.device("cpu"), tuned)
        cell = {(kernel, length): cells[row][column]
                for row, kernel in enumerate(report.MAP_KERNELS)
                for column, length in enumerate(report.MAP_LENGTHS)}
        assert cell[8, 1024] == report.Cell("fft", report.MEASURED, "fft")
        assert cell[2, 2048] == report.Cell("fft", report.MEASURED_NEARBY, "direct")
        assert cell[2, 4096] == report.Cell("fft", report.MEASURED_NEARBY, "direct")
        assert cell[2, 1024].source == report.COST_MODEL  # 1.5 octaves from 2900
        assert cell[4, 4096].source == report.COST_MODEL
        assert cell[4, 16384].source == cell[4, 32768].source == report.MEASURED_NEARBY
        assert cell[8, 2048].source == report.MEASURED_NEARBY  # 0.75 octaves from 1221
        assert cell[8192, 4096] is None  # a kernel longer than the input
        out = tmp_path / "report"
        assert main(["report", "--out", str(out), "--db", db_url, "--channels", "1"]) == 0
    text = (out / "report.md").read_text()
    assert "measured 1, measured nearby 5" in text
    assert "| direct | fft | 5 |" in text  # the selector's pick, overruled by measurements
