"""Results of the strategies benchmark and their markdown tables.

A :class:`WorkloadResult` holds, for one workload, the ``F.conv1d`` cell, each registered
strategy at its best parameter set, and each peer package. Cells that could not be timed keep a
status saying why ("n/a: ...", "not installed", "wrong (...)", "failed: ...").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from benchlib import format_bytes, format_seconds, markdown_table

from autoconv.catalogue.workload import Workload
from autoconv.strategies import reference

#: A result further than this from float64 F.conv1d (relative to the output's max) is "wrong".
WRONG_TOLERANCE = 1e-3

#: The strategy that is F.conv1d itself (its cell is the baseline of every ratio).
DIRECT = reference().name


def format_params(params: dict[str, Any] | None) -> str:
    """``{"block": 1024}`` -> ``block=1024`` (empty for no parameters)."""
    return ",".join(f"{key}={value}" for key, value in sorted((params or {}).items()))


@dataclass
class Cell:
    """One implementation on one workload."""

    label: str
    status: str = "ok"
    median_s: float | None = None
    samples: int = 0
    error: float | None = None
    peak_bytes: int | None = None
    params: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Timed and correct."""
        return self.status == "ok" and self.median_s is not None

    def time_text(self, with_params: bool = False) -> str:
        """Median (with the parameters) or the status."""
        if not self.ok:
            return self.status
        text = format_seconds(self.median_s)
        if self.samples == 1:
            text += " (1 sample)"
        if with_params and self.params:
            text += f" [{format_params(self.params)}]"
        return text


@dataclass
class WorkloadResult:
    """Everything measured on one workload."""

    workload: Workload
    direct: Cell
    strategies: dict[str, Cell] = field(default_factory=dict)
    peers: dict[str, Cell] = field(default_factory=dict)
    #: worst error over every parameter set of every non-direct strategy that ran
    max_strategy_error: float | None = None
    reference_complete: bool = True

    def best_strategy(self) -> Cell | None:
        """The fastest correct registered strategy (``direct`` is ``F.conv1d``'s cell)."""
        cells = [c for c in self.strategies.values() if c.ok]
        return min(cells, key=lambda c: c.median_s or math.inf, default=None)

    def best_fft(self) -> Cell | None:
        """The fastest correct strategy other than ``direct``."""
        cells = [c for name, c in self.strategies.items() if c.ok and name != DIRECT]
        return min(cells, key=lambda c: c.median_s or math.inf, default=None)

    def fastest_peer(self) -> Cell | None:
        """The fastest peer that computed the right result."""
        cells = [c for c in self.peers.values() if c.ok]
        return min(cells, key=lambda c: c.median_s or math.inf, default=None)


def ratio(numerator: Cell | None, denominator: Cell | None) -> float | None:
    """``numerator.median / denominator.median`` when both were timed."""
    if numerator is None or denominator is None or not (numerator.ok and denominator.ok):
        return None
    return (numerator.median_s or 0.0) / (denominator.median_s or math.inf)


def format_ratio(value: float | None) -> str:
    """``0.0312x`` or ``-``."""
    return "-" if value is None else f"{value:.3g}x"


def _error_text(cell: Cell, complete: bool) -> str:
    if cell.error is None:
        return cell.status if cell.status != "ok" else "-"
    return f"{cell.error:.1e}" + ("" if complete else "*")


def times_table(results: list[WorkloadResult], strategy_names: list[str],
                peer_names: list[str]) -> str:
    """Medians of every implementation, the best strategy and its ratios."""
    headers = ["workload", "shape", "F.conv1d",
               *[n for n in strategy_names if n != DIRECT], *peer_names,
               "best strategy", "best / F.conv1d", "best / fastest peer"]
    rows = []
    for result in results:
        best = result.best_strategy()
        peer = result.fastest_peer()
        rows.append([
            result.workload.name, result.workload.summary(), result.direct.time_text(),
            *[result.strategies[n].time_text(True) if n in result.strategies else "-"
              for n in strategy_names if n != DIRECT],
            *[result.peers[n].time_text() if n in result.peers else "-" for n in peer_names],
            best.label if best else "-", format_ratio(ratio(best, result.direct)),
            format_ratio(ratio(best, peer)) + (f" ({peer.label})" if peer and best else ""),
        ])
    return markdown_table(headers, rows)


def accuracy_memory_table(results: list[WorkloadResult], strategy_names: list[str],
                          peer_names: list[str]) -> str:
    """Relative error of every implementation and peak extra memory of the strategies."""
    headers = ["workload", "err F.conv1d", *[f"err {n}" for n in strategy_names if n != DIRECT],
               *[f"err {n}" for n in peer_names], "mem F.conv1d",
               *[f"mem {n}" for n in strategy_names if n != DIRECT]]
    rows = []
    for result in results:
        complete = result.reference_complete
        strategies = [result.strategies.get(n) for n in strategy_names if n != DIRECT]
        rows.append([
            result.workload.name, _error_text(result.direct, complete),
            *[_error_text(c, complete) if c else "-" for c in strategies],
            *[_error_text(result.peers[n], complete) if n in result.peers else "-"
              for n in peer_names],
            format_bytes(result.direct.peak_bytes),
            *[format_bytes(c.peak_bytes) if c and c.ok else "-" for c in strategies],
        ])
    return markdown_table(headers, rows)
