"""Shared checks of the ``autoconv`` command line for the command tests."""

from __future__ import annotations

from autoconv.cli import main
from autoconv.runtime.dispatch import dispatcher


def assert_warm_measures_then_resumes(args: list[str], count: int, capsys) -> None:
    """``autoconv warm ARGS`` measures ``count`` signatures; run again in a fresh process
    state (memory forgotten), it finds all of them in the database and measures none."""
    assert main(args) == 0
    assert f"warmed {count}/{count} signatures ({count} measured" in capsys.readouterr().out
    dispatcher.reset()
    assert main(args) == 0
    assert f"(0 measured, {count} already known)" in capsys.readouterr().out
