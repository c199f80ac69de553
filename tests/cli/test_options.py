"""The CLI's shared plumbing: argument types, one --db option, one error type."""

from __future__ import annotations

import argparse

import pytest
import torch

from autoconv.cli import main
from autoconv.cli.errors import CommandError
from autoconv.cli.main import build_parser
from autoconv.cli.options import dtype, padding, settings_overrides, shape, shard
from tuning_db.cli import db_option
from tuning_db.errors import TuningDBError


def test_argument_types_parse_and_refuse_clearly() -> None:
    assert shape("4,64,4096") == (4, 64, 4096)
    assert shard("2/4") == (2, 4)
    assert padding("same") == "same" and padding("7") == 7
    for parse, text, message in [(shape, "4,x", "comma-separated integers"),
                                 (shape, "4,0", "must be positive"),
                                 (shard, "3/2", "does not exist"),
                                 (shard, "two", "expected I/N"),
                                 (padding, "middle", "expected an integer, 'same' or 'valid'")]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(text)


def test_dtypes_are_parsed_once_for_every_command() -> None:
    assert dtype("bfloat16") is torch.bfloat16
    with pytest.raises(CommandError, match="unknown dtype 'float33'"):
        dtype("float33")
    with pytest.raises(CommandError, match="unknown dtype 'nn'"):
        dtype("nn")  # an attribute of torch that is not a dtype


def test_settings_overrides_come_from_db_and_budget() -> None:
    args = argparse.Namespace(db="sqlite:///x.sqlite3", budget=0.5)
    assert settings_overrides(args, mode="tune") == {"mode": "tune", "db_url": "sqlite:///x.sqlite3",
                                                     "budget_s": 0.5}
    assert settings_overrides(argparse.Namespace(db=None)) == {}
    with pytest.raises(CommandError, match="--budget must be positive, got -1"):
        settings_overrides(argparse.Namespace(db=None, budget=-1.0))


def test_command_errors_are_not_database_errors() -> None:
    assert not issubclass(CommandError, TuningDBError)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subcommands(sub).items()})
    return found


def test_every_command_takes_the_one_db_option() -> None:
    (expected,) = [a for a in db_option()._actions if "--db" in a.option_strings]
    commands = _subcommands(build_parser())
    with_db = {name: [a for a in sub._actions if "--db" in a.option_strings]
               for name, sub in commands.items()}
    with_db = {name: actions[0] for name, actions in with_db.items() if actions}
    assert set(with_db) == {"warm", "select", "train", "evaluate", "report", "db info",
                            "db upgrade", "db reset", "export", "import", "merge", "stats"}
    assert {(a.help, a.metavar, a.default) for a in with_db.values()} == {
        (expected.help, expected.metavar, expected.default)}


def test_a_bad_padding_names_the_option_not_an_internal_function(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["select", "--input-shape", "1,1,64", "--weight-shape", "1,1,3",
              "--padding", "middle"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --padding: expected an integer, 'same' or 'valid', got 'middle'" in err
    assert "_padding" not in err
