"""The report's winners map: which strategy each (kernel size, length) gets, one panel per
channel count, with the measured signatures drawn where they lie.

A cell is one signature (batch :data:`MAP_BATCH`, as many channels in as out, no padding,
stride 1): its strategy is the measured winner where the database has that very signature
(marked with a dot), else the winner of the nearest measurement that differs only in length
(at most an octave) and batch (at most two; marked with a circle), else the learned
predictor's pick, and where there is too little data for it, the cost model's (marked
with an x).

Measured signatures seldom are cells (real layers pad, have odd kernels and lengths), so
each one whose input channel count is a panel's is also drawn on that panel, as a diamond at
its own length and kernel size, filled with its measured winner's colour (hollow:
provisional). Those of other channel counts are counted under the map, with the
``--channels`` that would show them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from autoconv.offline.report_data import Tuned, most_common_channels
from autoconv.offline.report_plot import pyplot, samples_text
from autoconv.signature import Signature
from autoconv.strategies import all_strategies

MAP_LENGTHS = [2**k for k in range(8, 19)]
MAP_KERNELS = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
MAP_BATCH = 4

#: Where a cell of the winners map got its strategy from, as the legend and title say it.
MEASURED, MEASURED_NEARBY, LEARNED, COST_MODEL = ("measured", "measured nearby", "learned",
                                                  "cost model")
#: How far (in octaves) a measured signature may be from a cell and still answer it: its
#: length, and its batch, within these of the cell's; every other field equal.
NEARBY_LENGTH_OCTAVES = 1.0
NEARBY_BATCH_OCTAVES = 2.0
#: Most channel counts the map's note suggests for ``--channels``.
MOST_SUGGESTED = 4


def map_signature(channels: int, length: int, kernel: int, device: str) -> Signature:
    """The signature of one cell of the winners map."""
    return Signature(MAP_BATCH, channels, channels, length, kernel, 1, 0, 0, 1, 1, "float32",
                     device, False)


@dataclass(frozen=True)
class Cell:
    """One cell of the winners map.

    Attributes:
        strategy: the strategy drawn.
        source: where it came from (:data:`MEASURED`, :data:`MEASURED_NEARBY`,
            :data:`LEARNED` or :data:`COST_MODEL`).
        selector_pick: what the selector in mode ``predict`` answers for the cell; differs
            from ``strategy`` only where a nearby measurement contradicts it.
    """

    strategy: str
    source: str
    selector_pick: str


def _same_but_size(a: Signature, b: Signature) -> bool:
    """Whether two signatures differ at most in batch and length."""
    return (a.in_channels, a.out_channels, a.kernel_size, a.stride, a.padding_left,
            a.padding_right, a.dilation, a.groups, a.dtype, a.device, a.requires_grad,
            a.weight_reused) == (
        b.in_channels, b.out_channels, b.kernel_size, b.stride, b.padding_left,
        b.padding_right, b.dilation, b.groups, b.dtype, b.device, b.requires_grad,
        b.weight_reused)


def nearest_measured(signature: Signature, tuned: Iterable[Tuned]) -> Tuned | None:
    """The tuned signature closest to ``signature`` that differs from it only in batch and
    length, each within :data:`NEARBY_LENGTH_OCTAVES` / :data:`NEARBY_BATCH_OCTAVES`; None if
    there is none. Closeness counts length octaves fully and batch octaves at half weight."""
    best: tuple[float, Tuned] | None = None
    for candidate in tuned:
        if not _same_but_size(candidate.signature, signature):
            continue
        length = abs(math.log2(candidate.signature.length / signature.length))
        batch = abs(math.log2(candidate.signature.batch / signature.batch))
        if length > NEARBY_LENGTH_OCTAVES or batch > NEARBY_BATCH_OCTAVES:
            continue
        distance = length + batch / 2
        if best is None or distance < best[0]:
            best = (distance, candidate)
    return best[1] if best else None


def map_cell(signature: Signature, device: torch.device, tuned: list[Tuned]) -> Cell:
    """The strategy drawn for ``signature``: the selector's answer in mode ``predict``, except
    where the nearest measurement of a signature that differs only in batch and length names
    another winner (a cell never claims a winner the measurements contradict)."""
    from autoconv.runtime.dispatch import dispatcher
    from autoconv.settings import settings

    with settings.override(mode="predict"):
        choice = dispatcher.choose(signature, device)
    if choice.origin == "database":  # this very signature was measured
        return Cell(choice.strategy, MEASURED, choice.strategy)
    near = nearest_measured(signature, tuned)
    if near is not None:
        return Cell(near.winner, MEASURED_NEARBY, choice.strategy)
    source = LEARNED if choice.origin == "predicted" else COST_MODEL
    return Cell(choice.strategy, source, choice.strategy)


def map_cells(channels: int, device: torch.device, tuned: list[Tuned]
              ) -> list[list[Cell | None]]:
    """The cells of one panel, by kernel (rows) and length (columns); None where the kernel
    is longer than the input (no such call)."""
    same_panel = [t for t in tuned if t.signature.in_channels == channels]
    return [[map_cell(map_signature(channels, length, kernel, device.type), device, same_panel)
             if kernel <= length else None for length in MAP_LENGTHS] for kernel in MAP_KERNELS]


@dataclass(frozen=True)
class Point:
    """A measured signature drawn on a panel, at its length (column) and kernel size (row)
    in cell units; ``clamped`` when it lies outside the map and is drawn at its edge."""

    tuned: Tuned
    column: float
    row: float
    clamped: bool


def _axis_position(value: int, ticks: list[int]) -> tuple[float, bool]:
    """Where ``value`` lies on an axis of octave-spaced ``ticks`` (cell units), clamped to
    the axis; and whether it was clamped."""
    position = math.log2(value / ticks[0])
    low, high = -0.4, len(ticks) - 0.6
    return min(max(position, low), high), not low <= position <= high


def place(tuned: Iterable[Tuned], channels: int) -> list[Point]:
    """The measured signatures with ``channels`` input channels, placed on their panel."""
    points = []
    for t in tuned:
        if t.signature.in_channels != channels:
            continue
        column, wide = _axis_position(t.signature.length, MAP_LENGTHS)
        row, tall = _axis_position(t.signature.kernel_size, MAP_KERNELS)
        points.append(Point(t, column, row, wide or tall))
    return points


@dataclass
class WinnersMap:
    """The drawn map and what it shows.

    Attributes:
        figure: the matplotlib Figure.
        cells: every drawn cell, by source.
        points: the measured signatures drawn (as diamonds), over all panels.
        elsewhere: the measured signatures of channel counts without a panel (not drawn).
        suggested: channel counts for ``--channels`` that would show the most of them.
    """

    figure: Any
    cells: dict[str, list[Cell]]
    points: list[Point] = field(default_factory=list)
    elsewhere: list[Tuned] = field(default_factory=list)
    suggested: list[int] = field(default_factory=list)


#: How each source is marked on the map: (matplotlib marker, face colour), None: unmarked.
_MARKERS = {MEASURED: (".", "black"), MEASURED_NEARBY: ("o", "none"), LEARNED: None,
            COST_MODEL: ("x", "0.35")}


def _draw_cells(axis: Any, cells: list[list[Cell | None]], order: list[str], colours: Any,
                by_source: dict[str, list[Cell]]) -> None:
    grid = [[math.nan if cell is None else order.index(cell.strategy) for cell in row]
            for row in cells]
    axis.imshow(grid, origin="lower", cmap=colours, vmin=-0.5, vmax=len(order) - 0.5,
                aspect="auto", interpolation="nearest")
    for row, line in enumerate(cells):
        for column, cell in enumerate(line):
            if cell is None:
                continue
            by_source[cell.source].append(cell)
            marker = _MARKERS[cell.source]
            if marker is not None:
                axis.plot(column, row, marker[0], markersize=3, markeredgewidth=0.6,
                          color="black" if marker[1] == "none" else marker[1],
                          markerfacecolor=marker[1])


def _draw_points(axis: Any, points: list[Point], colour: dict[str, str]) -> None:
    """Each measured signature as a diamond: filled with its winner's colour and edged in
    black, or hollow and edged in that colour when its decision is provisional or was timed
    on a busy machine."""
    for point in points:
        winner = colour.get(point.tuned.winner, "0.5")
        provisional = point.tuned.uncertain
        axis.plot(point.column, point.row, "D", markersize=6, zorder=3,
                  markerfacecolor="white" if provisional else winner,
                  markeredgecolor=winner if provisional else "black",
                  markeredgewidth=1.4 if provisional else 0.7,
                  label=point.tuned.signature.short())


def suggest_channels(shown: list[int], elsewhere: list[Tuned]) -> list[int]:
    """Channel counts for ``--channels`` that show the panels' measured signatures and the
    most common of the others (at most :data:`MOST_SUGGESTED` panels)."""
    room = max(MOST_SUGGESTED - len(shown), 1)
    return sorted({*shown, *most_common_channels(elsewhere)[:room]})


def winners_map_figure(channels: list[int], device: torch.device,
                       tuned: list[Tuned]) -> WinnersMap:
    """Draw the winners map, one panel per channel count, and return it (not saved)."""
    from matplotlib.colors import ListedColormap

    plt = pyplot()
    strategies = all_strategies()
    order = [strategy.name for strategy in strategies]
    colour = {strategy.name: strategy.colour for strategy in strategies}
    colours = ListedColormap([strategy.colour for strategy in strategies])
    drawn = WinnersMap(None, {source: [] for source in _MARKERS})
    figure, axes = plt.subplots(1, len(channels), figsize=(max(8.5, 4.2 * len(channels)), 4.4),
                                squeeze=False, sharey=True)
    drawn.figure = figure
    for axis, count in zip(axes[0], channels):
        _draw_cells(axis, map_cells(count, device, tuned), order, colours, drawn.cells)
        points = place(tuned, count)
        _draw_points(axis, points, colour)
        drawn.points += points
        axis.set_xticks(range(len(MAP_LENGTHS)), [samples_text(n) for n in MAP_LENGTHS],
                        rotation=60)
        axis.set_yticks(range(len(MAP_KERNELS)), [str(k) for k in MAP_KERNELS])
        axis.set_xlim(-0.5, len(MAP_LENGTHS) - 0.5)
        axis.set_ylim(-0.5, len(MAP_KERNELS) - 0.5)
        axis.set_title(f"{count} channel{'s' if count > 1 else ''} in and out, batch "
                       f"{MAP_BATCH} ({len(points)} measured)")
        axis.set_xlabel("input length")
    axes[0][0].set_ylabel("kernel size")
    drawn.elsewhere = [t for t in tuned if t.signature.in_channels not in channels]
    drawn.suggested = suggest_channels(list(channels), drawn.elsewhere)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[name]) for name in order]
    figure.legend(handles, order, loc="upper left", bbox_to_anchor=(0.01, 0.92),
                  ncol=len(order), frameon=False)
    count = {source: len(cells) for source, cells in drawn.cells.items()}
    figure.suptitle(
        f"winning strategy: {len(drawn.points)} measured signature"
        f"{'s' * (len(drawn.points) != 1)} drawn (diamonds, their measured winner; hollow: "
        f"provisional or busy machine)\ncells: {count[MEASURED]} measured (dots), "
        f"{count[MEASURED_NEARBY]} measured nearby (circles), {count[LEARNED]} learned, "
        f"{count[COST_MODEL]} cost model (x)", x=0.01, y=0.995, ha="left", fontsize=10)
    notes = map_notes(drawn)
    for line, text in enumerate(notes):
        figure.text(0.02, 0.005 + 0.03 * line, text, fontsize=8)
    figure.tight_layout(rect=(0, 0.03 * (len(notes) + 0.2), 1, 0.95))
    return drawn


def map_notes(drawn: WinnersMap) -> list[str]:
    """The notes under the map, bottom line first: what white cells, circles and diamonds
    mean, and the measured signatures it does not show, with how to show them."""
    notes = [("white: the kernel is longer than the input (no such call); circles: measured "
              "at most an octave longer or shorter")]
    clamped = sum(point.clamped for point in drawn.points)
    notes.append("diamonds: measured signatures with the panel's input channels, at their "
                 "length and kernel size (any batch, padding, stride)"
                 + (f"; {clamped} outside the axes drawn at the edge" if clamped else ""))
    if drawn.elsewhere:
        others = most_common_channels(drawn.elsewhere)
        listed = ", ".join(str(count) for count in others[:6])
        total = len(drawn.points) + len(drawn.elsewhere)
        what = (f"none of the {total} measured signatures is shown" if not drawn.points else
                f"{len(drawn.elsewhere)} of the {total} measured signatures are not shown")
        notes.append(f"{what}: their input channels ({listed}{', ...' * (len(others) > 6)})"
                     f" have no panel; `autoconv report --channels "
                     f"{','.join(map(str, drawn.suggested))}` shows them")
    return notes
