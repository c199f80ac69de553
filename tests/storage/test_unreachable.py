"""A database server that accepts connections and never answers: bounded waits, one timeout
for the program, one-line errors from the commands."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

import autoconv
import tuning_db
from autoconv.cli import main
from autoconv.runtime import dispatcher
from tuning_db.errors import ConnectionFailedError


class SilentServer:
    """A TCP port that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.accepted: list[socket.socket] = []
        self.url = f"postgresql://nobody@127.0.0.1:{self.socket.getsockname()[1]}/nothing"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    pytest.importorskip("psycopg")
    server = SilentServer()
    yield server
    server.close()


def test_connecting_gives_up_after_the_timeout_with_a_clear_error(silent: SilentServer) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionFailedError, match=r"nobody@127\.0\.0\.1:\d+/nothing"):
        tuning_db.connect(silent.url, timeout_s=2)
    assert time.monotonic() - started < 60  # a guard against hanging, not a speed target


def test_the_commands_fail_in_one_line(silent: SilentServer, capsys,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOCONV_DB_TIMEOUT_S", "2")
    assert main(["stats", "--db", silent.url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("autoconv: error: cannot open")


def test_conv1d_pays_one_timeout_then_runs_without_the_database(silent: SilentServer) -> None:
    x, w = torch.randn(1, 2, 100), torch.randn(2, 2, 3)
    try:
        with autoconv.settings.override(db_url=silent.url, db_timeout_s=2, budget_s=0.1,
                                        mode="tune"):
            with pytest.warns(RuntimeWarning, match="trying it again in 30 s"):
                torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
            attempts = len(silent.accepted)
            for kernel in (5, 7, 9):  # new signatures: tuned, not waiting on the server
                autoconv.conv1d(x, torch.randn(2, 2, kernel))
            assert len(silent.accepted) == attempts >= 1
    finally:
        dispatcher.reset()


def test_live_exploration_goes_on_without_the_database(silent: SilentServer,
                                                      exploring: None) -> None:
    # mode live: every call explores, and the decision it reaches cannot be stored
    x, w = torch.randn(1, 2, 100), torch.randn(2, 2, 3)
    try:
        with autoconv.settings.override(db_url=silent.url, db_timeout_s=2), torch.no_grad():
            with pytest.warns(RuntimeWarning, match="trying it again in 30 s"):
                torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
            attempts = len(silent.accepted)
            for _ in range(100):
                torch.testing.assert_close(autoconv.conv1d(x, w), F.conv1d(x, w))
            assert autoconv.select(x, w).origin == "measured"  # decided, kept in memory
            assert len(silent.accepted) == attempts >= 1  # and never waited on the server
    finally:
        dispatcher.reset()


@pytest.mark.postgres
def test_a_terminated_connection_loses_nothing(pg_schema_url) -> None:
    from sqlalchemy import create_engine, text

    from tests.conftest import pg_base_url
    from tuning_db.urls import parse_url

    url = parse_url(pg_schema_url()).update_query_dict(
        {"application_name": "autoconv_victim"}).render_as_string(hide_password=False)
    admin = create_engine(parse_url(pg_base_url()))
    kernels = range(3, 33)
    try:
        with autoconv.settings.override(db_url=url, budget_s=0.05, mode="tune"):
            for index, kernel in enumerate(kernels):
                if index in (10, 20):  # the server drops autoconv's connections
                    with admin.begin() as connection:
                        killed = connection.execute(text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = 'autoconv_victim'")).scalar_one()
                    assert killed >= 1
                autoconv.conv1d(torch.randn(1, 2, 100), torch.randn(2, 2, kernel))
            stored = {m.signature.kernel_size for _, m in
                      dispatcher.selector.store.db.measurements()}
    finally:
        dispatcher.reset()
        admin.dispose()
    assert stored == set(kernels)
