"""The report's speed-up chart: the measured speed-up of each decision over ``F.conv1d``.

One horizontal bar per signature where ``F.conv1d`` itself was timed, largest first, named
by the signature (:meth:`Signature.short <autoconv.signature.Signature.short>`) and labelled
with its factor and provenance (the winner, how many times each side was timed, whether the
decision is provisional or was timed on a busy machine), coloured by the winning strategy;
the bar of an uncertain figure (provisional, or a busy machine) is hatched and lighter. The
axis is logarithmic with plain factors (1x, 2x, 5x, 10x). A signature whose ``F.conv1d`` was
never timed (too slow to time within the budget, or not measured) is no bar: the note under
the chart lists it as not compared.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from autoconv.offline.report_data import Tuned
from autoconv.offline.report_plot import factor_text, pyplot, save
from autoconv.strategies import all_strategies

#: Most bars drawn (the largest speed-ups); report.md counts the others.
MAX_BARS = 40
#: Most signatures the chart's note lists as not compared; report.md lists them all.
MAX_LISTED = 6
#: How bars are drawn: certain figures, and uncertain ones (hatched and lighter).
SETTLED_ALPHA = 0.8
UNCERTAIN_ALPHA = 0.35
UNCERTAIN_HATCH = "///"
#: The factors an axis may tick at (1, 2, 5 per decade): never a fraction of one of them.
_NICE = [m * 10.0**e for e in range(-3, 7) for m in (1, 2, 5)]
#: The figure's width and a label's width per character (inches, at 7 points): what the
#: names take on the left, and what the axis leaves right of the bars for their labels.
WIDTH_IN, CHAR_IN = 11.0, 0.053


def bar_name(tuned: Tuned) -> str:
    """A bar's name (its tick label): the signature in a few words."""
    return tuned.signature.short()


def bar_label(tuned: Tuned) -> str:
    """The label at a bar's end: the speed-up, then how it was measured."""
    return f"{tuned.speedup or 1.0:.3g}x  {tuned.provenance}"


def compared(tuned: list[Tuned]) -> list[Tuned]:
    """The signatures measured against a timed ``F.conv1d``, largest speed-up first."""
    return sorted((t for t in tuned if t.speedup is not None),
                  key=lambda t: (-(t.speedup or 0.0), t.signature.short()))


def not_compared(tuned: list[Tuned]) -> list[Tuned]:
    """The signatures whose ``F.conv1d`` was never timed, the largest estimates first."""
    return sorted((t for t in tuned if t.speedup is None),
                  key=lambda t: (-(t.estimated_speedup or 0.0), t.signature.short()))


def not_compared_text(tuned: Tuned) -> str:
    """One signature that was not compared, and why, in one line."""
    why = ("too slow to time within the budget (its estimate puts it at "
           f"{tuned.estimated_speedup:.3g}x the winner's time)" if tuned.estimated_speedup
           else "not timed")
    return (f"{tuned.signature.short()}: {tuned.candidate or tuned.winner} "
            f"{tuned.best_s * 1e3:.3g} ms; F.conv1d {why}")


def ticks(low: float, high: float) -> list[float]:
    """The 1-2-5 factors between ``low`` and ``high`` (1 always among them)."""
    return [t for t in _NICE if low <= t <= high] or [1.0]


def chart_notes(tuned: list[Tuned]) -> list[str]:
    """The notes under the chart: bars left out, uncertain bars, signatures not compared."""
    notes = []
    hidden = len(compared(tuned)) - MAX_BARS
    if hidden > 0:
        notes.append(f"{hidden} more signatures with smaller speed-ups are not drawn "
                     f"(report.md counts them)")
    if any(t.uncertain for t in compared(tuned)[:MAX_BARS]):
        notes.append("hatched, lighter bars: provisional decisions, or timed on a busy machine: "
                     "the factor may be far off; `autoconv warm` on a quiet machine measures "
                     "them again")
    missing = not_compared(tuned)
    if missing:
        notes.append(f"not compared: F.conv1d not timed (too slow to time within the budget, "
                     f"or not measured) for {len(missing)} signature"
                     f"{'s' * (len(missing) != 1)}, drawn as no bar:")
        notes += [f"    {not_compared_text(t)}" for t in missing[:MAX_LISTED]]
        if len(missing) > MAX_LISTED:
            notes.append(f"    ... and {len(missing) - MAX_LISTED} more (report.md lists "
                         f"them)")
    return notes


def left_margin(bars: list[Tuned]) -> float:
    """The share of the figure's width the bars' names take (at most half)."""
    longest = max((len(bar_name(t)) for t in bars), default=0)
    return min((longest * CHAR_IN + 0.3) / WIDTH_IN, 0.5)


def x_limits(bars: list[Tuned], axes_in: float) -> tuple[float, float]:
    """The axis' range: from below 1x (and the smallest factor) to far enough right of the
    largest bar for every bar's label (:func:`bar_label`) to fit in axes ``axes_in`` inches
    wide."""
    factors = [t.speedup or 1.0 for t in bars]
    low = math.log10(min([1.0, *factors]) / 1.3)
    high = math.log10(max([2.0, *factors]) * 1.3)
    for t, factor in zip(bars, factors):
        # the label takes share f of the axes: log(high) - log(end) >= f * (high - low)
        share = min((len(bar_label(t)) * CHAR_IN + 0.3) / axes_in, 0.7)
        end = math.log10(max(factor, 1.0))
        high = max(high, (end - low * share) / (1 - share))
    return 10**low, 10**high


def speedup_figure(tuned: list[Tuned]) -> Any:
    """Draw the speed-up chart (see the module doc) and return its matplotlib Figure."""
    from matplotlib.ticker import NullLocator

    plt = pyplot()
    colour = {strategy.name: strategy.colour for strategy in all_strategies()}
    bars = compared(tuned)[:MAX_BARS]
    notes = chart_notes(tuned)
    note_inches = 0.17 * len(notes) + 0.1
    height = 1.6 + 0.24 * max(len(bars), 3) + note_inches
    figure, axis = plt.subplots(figsize=(WIDTH_IN, height))
    for index, t in enumerate(bars):
        speedup = t.speedup or 1.0
        hue = colour.get(t.winner, "0.5")
        # a bar runs from 1x (F.conv1d itself) to the speed-up, on either side of it
        container = axis.barh(
            index, speedup - 1.0, left=1.0, height=0.7, color=hue,
            alpha=UNCERTAIN_ALPHA if t.uncertain else SETTLED_ALPHA,
            hatch=UNCERTAIN_HATCH if t.uncertain else None, edgecolor=hue,
            linewidth=0.6 if t.uncertain else 0)
        axis.bar_label(container, labels=[bar_label(t)], padding=3, fontsize=7)
    axis.axvline(1.0, color="black", linewidth=0.8)
    axis.set_xscale("log")
    left, right = left_margin(bars), 0.98
    low, high = x_limits(bars, WIDTH_IN * (right - left))
    axis.set_xlim(low, high)
    axis.set_xticks(ticks(low, high), [factor_text(t) for t in ticks(low, high)])
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_yticks(range(len(bars)), [bar_name(t) for t in bars], fontsize=7)
    axis.set_ylim(len(bars) - 0.5 if bars else 0.5, -0.5)  # the largest on top
    axis.set_xlabel("F.conv1d time / winner time (measured; 1x: F.conv1d itself won)")
    axis.set_title(f"measured speed-up over F.conv1d: {len(bars)} of "
                   f"{len(compared(tuned))} compared signatures drawn, "
                   f"{len(not_compared(tuned))} not compared", fontsize=10)
    if not bars:
        axis.text(0.5, 0.5, "F.conv1d was not timed for any tuned signature",
                  transform=axis.transAxes, ha="center", va="center")
    _legend(plt, axis, bars, colour)
    for line, text in enumerate(reversed(notes)):
        figure.text(0.01, (0.05 + 0.17 * line) / height, text, fontsize=7.5)
    figure.subplots_adjust(left=left, right=right, top=1 - 0.35 / height,
                           bottom=(note_inches + 0.55) / height)
    return figure


def _legend(plt: Any, axis: Any, bars: list[Tuned], colour: dict[str, str]) -> None:
    winners = [name for name in colour if any(t.winner == name for t in bars)]
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[name], alpha=SETTLED_ALPHA)
               for name in winners]
    labels = list(winners)
    if any(t.uncertain for t in bars):
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="0.6", alpha=UNCERTAIN_ALPHA,
                                     hatch=UNCERTAIN_HATCH, edgecolor="0.3"))
        labels.append("provisional or busy machine")
    if handles:
        axis.legend(handles, labels, loc="lower right", fontsize=8)


def speedup_chart(path: Path, tuned: list[Tuned]) -> None:
    """Write the speed-up chart (:func:`speedup_figure`) to ``path`` as a PNG."""
    save(speedup_figure(tuned), path)
