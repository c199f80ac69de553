"""Options and argument parsing the ``autoconv`` commands share.

Torch is imported only inside the functions that need it, so that building the parser (and
``autoconv --help``, and the database commands) stays quick.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from autoconv.cli.errors import CommandError
from tuning_db.cli import db_option

if TYPE_CHECKING:
    import torch

__all__ = ["db_option", "device", "device_option", "dtype", "padding", "settings_overrides", "shape",
           "shard", "tuning_options"]


def shape(text: str) -> tuple[int, ...]:
    """``"4,64,4096"`` -> ``(4, 64, 4096)`` (an argparse ``type``)."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not sizes or any(size <= 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return sizes


def shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``: shard I of N, 1-based (an argparse ``type``)."""
    index, _, count = text.partition("/")
    try:
        value = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N, e.g. 2/4, got {text!r}")
    if not 1 <= value[0] <= value[1]:
        raise argparse.ArgumentTypeError(f"shard {text} does not exist (I must be 1..N)")
    return value


def padding(text: str) -> int | str:
    """``"same"``, ``"valid"`` or a sample count (an argparse ``type``)."""
    if text in ("same", "valid"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer, 'same' or 'valid', got {text!r}") from None


def dtype(name: str) -> torch.dtype:
    """The torch dtype called ``name`` (``"float32"``, ``"bfloat16"``, ...).

    Raises:
        CommandError: no such dtype.
    """
    import torch

    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise CommandError(f"unknown dtype {name!r}")
    return value


def device(text: str) -> str:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"``, checked against this machine (an argparse
    ``type``): a CPU-only torch build, or a GPU index that does not exist, is one line."""
    import torch

    try:
        parsed = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device (expected cpu, cuda or cuda:N)") from None
    if parsed.type == "cpu":
        return text
    if parsed.type != "cuda":
        raise argparse.ArgumentTypeError(f"autoconv tunes on cpu or cuda, not {parsed.type}")
    if torch.version.cuda is None:
        raise argparse.ArgumentTypeError(f"{text}: this torch build has no CUDA "
                                         f"(torch {torch.__version__})")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise argparse.ArgumentTypeError(f"{text}: no CUDA device is available")
    if (parsed.index or 0) >= count:
        raise argparse.ArgumentTypeError(f"{text}: there is no CUDA device {parsed.index} "
                                         f"({count} available)")
    return text


def device_option(help: str = "device to tune on (cpu, cuda, cuda:1)") -> argparse.ArgumentParser:
    """A parent parser with ``--device``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--device", type=device, default="cpu", help=help)
    return parent


def tuning_options() -> argparse.ArgumentParser:
    """A parent parser with what every command that may tune takes: ``--db``, ``--budget``
    and ``--device``."""
    parent = argparse.ArgumentParser(add_help=False, parents=[db_option(), device_option()])
    parent.add_argument("--budget", type=float, metavar="S",
                        help="tuning budget per signature, seconds (default: settings.budget_s)")
    return parent


def settings_overrides(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """The ``autoconv.settings`` values a command's ``--db`` and ``--budget`` ask for (plus
    ``extra``), for ``settings.override(**...)``.

    Raises:
        CommandError: a budget that is not positive.
    """
    values: dict[str, Any] = dict(extra)
    if getattr(args, "db", None) is not None:
        values["db_url"] = args.db
    budget = getattr(args, "budget", None)
    if budget is not None:
        if budget <= 0:
            raise CommandError(f"--budget must be positive, got {budget}")
        values["budget_s"] = budget
    return values
