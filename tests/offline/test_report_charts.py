"""What the report's figures draw, read off the matplotlib objects: the speed-up chart's bars,
names, labels, ticks and notes, the winners map's measured signatures, and the predictor's
worst regrets. Rows are written to a temporary tuning database with known times; nothing is
timed, and no assertion depends on the machine's speed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import tuning_db
from autoconv.cli import main
from autoconv.offline import report_map, report_speedup
from autoconv.offline.report_data import tuned_signatures
from autoconv.runtime.dispatch import dispatcher
from autoconv.settings import settings
from autoconv.signature import Signature
from autoconv.storage.store import device_record
from autoconv.strategies import get

pytest.importorskip("matplotlib")

CPU = torch.device("cpu")
BUSY = "contended: 4 of 5 samples disturbed"
ESTIMATE = "estimated: F.conv1d as called on windows of 512 outputs"


def record(batch: int, channels: int, length: int, kernel: int, padding: int = 0
           ) -> tuning_db.SignatureRecord:
    return tuning_db.SignatureRecord(
        batch=batch, in_channels=channels, out_channels=channels, length=length,
        kernel_size=kernel, stride=1, padding_left=padding, padding_right=padding, dilation=1,
        groups=1, dtype="float32", device="cpu")


def short(signature: tuning_db.SignatureRecord) -> str:
    return Signature(**signature.model_dump()).short()


#: (signature, {strategy: (seconds, samples, note)}): what the chart tests store
FFT_34X = record(1, 1, 48000, 4801)  # fft 34x faster than F.conv1d, five samples each
BUSY_15X = record(8, 256, 3000, 65, padding=32)  # 15.5x, but F.conv1d timed on a busy machine
ONE_SAMPLE = record(2, 80, 16000, 1)  # F.conv1d wins on one sample: provisional
BUSY_TIE = record(4, 16, 4096, 9)  # fft 1.2x, both busy: the tie rule keeps F.conv1d
REVERB = record(1, 1, 480000, 96000)  # F.conv1d too slow to time: only its estimate
UNTIMED = record(1, 2, 48000, 4801)  # F.conv1d not measured at all
ROWS = {
    FFT_34X: {"direct": (3.4e-2, 5, None), "fft": (1e-3, 5, None)},
    BUSY_15X: {"direct": (3.1e-2, 5, BUSY), "fft": (2e-3, 5, None)},
    ONE_SAMPLE: {"direct": (1e-4, 1, None), "fft": (3e-4, 1, None)},
    BUSY_TIE: {"direct": (1.2e-3, 5, BUSY), "fft": (1e-3, 5, BUSY)},
    REVERB: {"direct": (3.4, 1, ESTIMATE), "fft": (0.1, 5, None)},
    UNTIMED: {"fft": (1e-2, 5, None)},
}


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AUTOCONV_MODEL_DIR", str(tmp_path / "models"))
    yield f"sqlite:///{tmp_path / 'tuning.sqlite3'}"
    dispatcher.reset()


def store(db_url: str, rows: dict) -> list:
    """Write ``rows`` to the database, read them back and decide them as the report does."""
    records = [tuning_db.MeasurementRecord(signature=signature, strategy=name, median_s=seconds,
                                           samples=samples, note=note, autoconv_version="test")
               for signature, times in rows.items()
               for name, (seconds, samples, note) in times.items()]
    with tuning_db.connect(db_url) as db:
        db.record_many(device_record(CPU), records)
        return tuned_signatures(m for _, m in db.measurements(device_record(CPU).device_id))


def test_each_bar_is_a_measured_speedup_named_with_its_provenance(db_url: str) -> None:
    import matplotlib.pyplot as plt

    figure = report_speedup.speedup_figure(store(db_url, ROWS))
    try:
        axis = figure.axes[0]
        names = [label.get_text() for label in axis.get_yticklabels()]
        # largest first (ties by name); the reverb and the untimed one are no bars
        assert names == [short(FFT_34X), short(BUSY_15X), short(ONE_SAMPLE), short(BUSY_TIE)]
        assert len(axis.patches) == 4
        labels = [text.get_text() for text in axis.texts]
        assert labels == ["34x  fft 5 samples vs F.conv1d 5",
                          "15.5x  fft 5 samples vs F.conv1d 5, busy machine",
                          "1x  F.conv1d won, 1 sample, provisional",
                          "1x  F.conv1d won, 5 samples, provisional, busy machine"]
        # uncertain figures hatched and lighter
        assert [bar.get_hatch() for bar in axis.patches] == [None, "///", "///", "///"]
        assert axis.patches[0].get_alpha() == report_speedup.SETTLED_ALPHA
        assert axis.patches[1].get_alpha() == report_speedup.UNCERTAIN_ALPHA
        # a bar spans 1x (F.conv1d) to its factor
        assert axis.patches[0].get_x() == 1.0
        assert axis.patches[0].get_width() == pytest.approx(33.0)
        # a log axis ticked at whole factors, no minor tick labels
        assert axis.get_xscale() == "log"
        ticks = [label.get_text() for label in axis.get_xticklabels()]
        assert ticks[:4] == ["1x", "2x", "5x", "10x"] and "20x" in ticks
        assert all(re.fullmatch(r"[\d,]+x", tick) for tick in ticks)
        assert len(axis.xaxis.get_minorticklocs()) == 0
        notes = [text.get_text() for text in figure.texts]
        assert any(note.startswith("not compared: F.conv1d not timed") for note in notes)
        reverb = next(note for note in notes if short(REVERB) in note)
        assert "too slow to time within the budget" in reverb and "34x the winner's" in reverb
        assert any(short(UNTIMED) in note and "F.conv1d not timed" in note for note in notes)
        assert any(note.startswith("hatched, lighter bars") for note in notes)
        legend = [text.get_text() for text in axis.get_legend().get_texts()]
        assert legend == ["direct", "fft", "provisional or busy machine"]
    finally:
        plt.close(figure)


def test_the_tuned_decisions_carry_their_provenance(db_url: str) -> None:
    tuned = {t.signature: t for t in store(db_url, ROWS)}
    busy = tuned[Signature(**BUSY_15X.model_dump())]
    assert busy.speedup == pytest.approx(15.5) and busy.contended and busy.uncertain
    assert busy.provisional is None  # fft beats even a busy F.conv1d by far more than 2x
    tie = tuned[Signature(**BUSY_TIE.model_dump())]
    assert tie.winner == get("direct").name and tie.speedup == 1.0 and tie.provisional
    reverb = tuned[Signature(**REVERB.model_dump())]
    assert reverb.speedup is None and reverb.estimated_speedup == pytest.approx(34.0)
    untimed = tuned[Signature(**UNTIMED.model_dump())]
    assert untimed.speedup is None and untimed.estimated_speedup is None


def test_bars_beyond_the_most_drawn_are_counted(db_url: str, monkeypatch) -> None:
    import matplotlib.pyplot as plt

    monkeypatch.setattr(report_speedup, "MAX_BARS", 2)
    figure = report_speedup.speedup_figure(store(db_url, ROWS))
    try:
        assert len(figure.axes[0].patches) == 2
        notes = [text.get_text() for text in figure.texts]
        assert "2 more signatures with smaller speed-ups are not drawn (report.md counts them)" \
            in notes
        assert "2 of 4 compared signatures drawn" in figure.axes[0].get_title()
    finally:
        plt.close(figure)


def test_the_map_draws_the_measured_signatures_and_names_the_others(db_url: str) -> None:
    import matplotlib.pyplot as plt

    tuned = store(db_url, {BUSY_15X: ROWS[BUSY_15X], record(8, 256, 3000, 3, padding=1):
                           {"direct": (2e-3, 5, None), "fft": (5e-3, 5, None)},
                           record(2, 3, 16000, 31): {"direct": (1e-3, 5, None)}})
    with settings.override(db_url=db_url, persist=True):
        dispatcher.reset()
        drawn = report_map.winners_map_figure([1, 256], CPU, tuned)
    try:
        assert sorted(point.tuned.signature.kernel_size for point in drawn.points) == [3, 65]
        assert [t.signature.in_channels for t in drawn.elsewhere] == [3]
        panel = drawn.figure.axes[1]
        assert panel.get_title() == "256 channels in and out, batch 4 (2 measured)"
        diamonds = [line for line in panel.get_lines() if line.get_marker() == "D"]
        assert len(diamonds) == 2
        by_kernel = {line.get_label(): line for line in diamonds}
        busy = by_kernel[short(BUSY_15X)]
        # at length 3000 (log2(3000 / 256) cells right of 256) and K=65 (log2(65 / 2) up)
        assert busy.get_xdata()[0] == pytest.approx(3.55, abs=0.01)
        assert busy.get_ydata()[0] == pytest.approx(5.02, abs=0.01)
        # its figure was timed on a busy machine: hollow, edged in the winner's colour
        assert busy.get_markerfacecolor() == "white"
        assert busy.get_markeredgecolor() == get("fft").colour
        settled = by_kernel[short(record(8, 256, 3000, 3, padding=1))]
        assert settled.get_markerfacecolor() == get("direct").colour
        assert not any(line.get_marker() == "D" for line in drawn.figure.axes[0].get_lines())
        assert "2 measured signatures drawn" in drawn.figure._suptitle.get_text()
        notes = [text.get_text() for text in drawn.figure.texts]
        assert ("1 of the 3 measured signatures are not shown: their input channels (3) have "
                "no panel; `autoconv report --channels 1,3,256` shows them") in notes
    finally:
        plt.close(drawn.figure)


def test_a_map_showing_none_of_the_measurements_says_so(db_url: str) -> None:
    import matplotlib.pyplot as plt

    tuned = store(db_url, {ONE_SAMPLE: ROWS[ONE_SAMPLE]})
    with settings.override(db_url=db_url, persist=True):
        dispatcher.reset()
        drawn = report_map.winners_map_figure([1], CPU, tuned)
    plt.close(drawn.figure)
    assert not drawn.points
    assert ("none of the 1 measured signatures is shown: their input channels (80) have no "
            "panel; `autoconv report --channels 1,80` shows them") in report_map.map_notes(drawn)


def test_the_cli_report_lists_what_it_did_not_compare(db_url: str, tmp_path: Path,
                                                       capsys) -> None:
    store(db_url, ROWS)
    out = tmp_path / "report"
    # no --channels: the panels are the channel counts measured most often
    assert main(["report", "--out", str(out), "--db", db_url]) == 0
    assert len(capsys.readouterr().out.split()) == 3
    text = (out / "report.md").read_text()
    assert "- signatures where F.conv1d was timed: 4" in text
    assert (f"largest 34.0x ({short(FFT_34X)}, fft 5 samples vs F.conv1d 5)") in text
    assert "- provisional decisions among them" in text
    assert "Not compared: F.conv1d not timed" in text
    assert (f"- {short(REVERB)}: fft 100 ms; F.conv1d too slow to time within the budget "
            f"(its estimate puts it at 34x the winner's time)") in text
    assert f"- {short(UNTIMED)}: fft 10 ms; F.conv1d not timed" in text
    # the default panels: 1 channel (measured twice), then the smallest of those measured
    # once (2 and 16), hold four of the six; 80 is the next suggested
    assert "Measured signatures drawn on the map (diamonds): 4 of 6" in text
    assert "`autoconv report --channels 1,2,16,80` shows them" in text
