"""Rows a faulty or hostile writer put straight into a shared database are skipped on the way
out, with one warning: lookups, listings, stats and export go on with the valid rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import tuning_db
from autoconv.cli import main
from tests.tuning_db.factories import make_device, make_measurement, make_signature
from tuning_db.urls import parse_url

#: (what, SQL assignment) of the damage done to one row each.
DAMAGE = [("a negative median", "median_s = -1.0"),
          ("a NaN median", "median_s = 'NaN'"),
          ("params that are not JSON", "params = 'not json'"),
          ("params that are a JSON list", "params = '[1, 2]'")]


@pytest.fixture
def damaged(backend_url: str) -> str:
    """Five measurements of one signature, four of them damaged in the database itself."""
    signature = make_signature()
    with tuning_db.connect(backend_url) as db:
        db.record_many(make_device(), [
            make_measurement(signature, strategy=f"s{i}", median_s=1e-3 * (i + 1))
            for i in range(len(DAMAGE) + 1)])
    engine = create_engine(parse_url(backend_url))
    with engine.begin() as connection:
        for index, (_, assignment) in enumerate(DAMAGE):
            if "NaN" in assignment and engine.dialect.name == "sqlite":
                assignment = "median_s = 9e999"  # SQLite stores no NaN: an infinite one
            connection.execute(text(f"UPDATE measurements SET {assignment} "
                                    f"WHERE strategy = 's{index}'"))
    engine.dispose()
    return backend_url


def test_lookups_skip_the_damaged_rows_with_one_warning(damaged: str) -> None:
    with tuning_db.connect(damaged) as db, pytest.warns(RuntimeWarning,
                                                       match="skipped 4 invalid stored row"):
        rows = db.candidates(make_device().device_id, make_signature())
    assert [row.strategy for row in rows] == [f"s{len(DAMAGE)}"]


def test_listings_stats_and_export_go_on_with_the_valid_rows(damaged: str, tmp_path: Path,
                                                            capsys) -> None:
    with tuning_db.connect(damaged) as db, pytest.warns(RuntimeWarning, match="skipped 4"):
        assert [m.strategy for _, m in db.measurements()] == [f"s{len(DAMAGE)}"]
    with pytest.warns(RuntimeWarning, match="skipped 4"):
        assert main(["export", str(tmp_path / "bundle.json"), "--db", damaged]) == 0
    assert "wrote 1 measurements" in capsys.readouterr().out
    assert main(["stats", "--db", damaged]) == 0
