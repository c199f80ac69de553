"""``autoconv report``: what the tuning database knows about this device, as pictures and text.

Writes three files into a folder:

* ``winners_map.png``: the strategy each (kernel size, length) gets, for a few typical channel
  counts (one panel each; batch 4, no padding, stride 1): the measured winner where the
  database has the exact signature (marked with a dot), else the winner of the nearest
  measurement that differs only in length (at most an octave) and batch (at most two; marked
  with a circle), else the learned predictor's pick, and where there is too little data for
  it, the cost model's (marked with an x). The title counts each; white cells (a kernel
  longer than the input) are explained, and ``report.md`` lists the cells where the
  selector's own answer differs from the measurement drawn;
* ``speedup.png``: the measured speed-up of the winner over ``F.conv1d`` for every tuned
  signature where ``F.conv1d`` itself was timed, as sorted bars coloured by the winner;
* ``report.md``: the device, what was tuned, winners by strategy, speed-up figures, and the
  predictor's grouped cross-validation scores.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

import tuning_db
from autoconv.signature import Signature
from autoconv.storage.store import device_record
from autoconv.strategies import all_strategies, is_plain_conv1d

MAP_LENGTHS = [2**k for k in range(8, 19)]
MAP_KERNELS = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
MAP_BATCH = 4
#: Fewest tuned signatures for which the predictor is cross-validated in the report.
MIN_SIGNATURES_FOR_EVALUATION = 20


class ReportError(ValueError):
    """The report cannot be made (no data for this device, matplotlib missing)."""


@dataclass(frozen=True)
class Tuned:
    """One tuned signature: its winner and, if F.conv1d was timed, the speed-up over it."""

    signature: Signature
    winner: str
    best_s: float
    speedup: float | None


def tuned_signatures(measurements: Iterable[tuning_db.MeasurementRecord]) -> list[Tuned]:
    """Every signature with at least one valid measurement among ``measurements``."""
    by_signature: dict[Signature, list[tuning_db.MeasurementRecord]] = {}
    for measurement in measurements:
        if measurement.ok:
            signature = Signature(**measurement.signature.model_dump())
            by_signature.setdefault(signature, []).append(measurement)
    tuned = []
    for signature, rows in by_signature.items():
        best = min(rows, key=lambda m: m.median_s)
        plain = [m.median_s for m in rows if is_plain_conv1d(m.strategy, m.params)]
        speedup = plain[0] / best.median_s if plain else None
        tuned.append(Tuned(signature, best.strategy, best.median_s, speedup))
    return tuned


def map_signature(channels: int, length: int, kernel: int, device: str) -> Signature:
    """The signature of one cell of the winners map."""
    return Signature(MAP_BATCH, channels, channels, length, kernel, 1, 0, 0, 1, 1, "float32",
                     device, False)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ReportError("the report needs matplotlib: pip install 'autoconv[report]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


#: Where a cell of the winners map got its strategy from, as the legend and title say it.
MEASURED, MEASURED_NEARBY, LEARNED, COST_MODEL = ("measured", "measured nearby", "learned",
                                                   "cost model")
#: How far (in octaves) a measured signature may be from a cell and still answer it: its
#: length, and its batch, within these of the cell's; every other field equal.
NEARBY_LENGTH_OCTAVES = 1.0
NEARBY_BATCH_OCTAVES = 2.0


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
            a.padding_right, a.dilation, a.groups, a.dtype, a.device, a.requires_grad) == (
        b.in_channels, b.out_channels, b.kernel_size, b.stride, b.padding_left,
        b.padding_right, b.dilation, b.groups, b.dtype, b.device, b.requires_grad)


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


#: How each source is marked on the map: (matplotlib marker, face colour), None: unmarked.
_MARKERS = {MEASURED: (".", "black"), MEASURED_NEARBY: ("o", "none"), LEARNED: None,
            COST_MODEL: ("x", "0.35")}


def winners_map(path: Path, channels: list[int], device: torch.device,
                tuned: list[Tuned]) -> dict[str, list[Cell]]:
    """Draw the winners map; returns every drawn cell, by source."""
    from matplotlib.colors import ListedColormap

    plt = _pyplot()
    strategies = all_strategies()
    order = [strategy.name for strategy in strategies]
    colours = ListedColormap([strategy.colour for strategy in strategies])
    by_source: dict[str, list[Cell]] = {source: [] for source in _MARKERS}
    figure, axes = plt.subplots(1, len(channels), figsize=(max(8.5, 4.2 * len(channels)), 4),
                                squeeze=False, sharey=True)
    for axis, count in zip(axes[0], channels):
        cells = map_cells(count, device, tuned)
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
        axis.set_xticks(range(len(MAP_LENGTHS)), [_samples(n) for n in MAP_LENGTHS],
                        rotation=60)
        axis.set_yticks(range(len(MAP_KERNELS)), [str(k) for k in MAP_KERNELS])
        axis.set_title(f"{count} channel{'s' if count > 1 else ''} in and out, batch "
                       f"{MAP_BATCH}")
        axis.set_xlabel("input length")
    axes[0][0].set_ylabel("kernel size")
    handles = [plt.Rectangle((0, 0), 1, 1, color=strategy.colour) for strategy in strategies]
    figure.legend(handles, order, loc="upper left", bbox_to_anchor=(0.01, 0.94),
                  ncol=len(order), frameon=False)
    count = {source: len(cells) for source, cells in by_source.items()}
    figure.suptitle(f"winning strategy: {count[MEASURED]} cells measured (dots), "
                    f"{count[MEASURED_NEARBY]} measured nearby (circles), {count[LEARNED]} "
                    f"learned, {count[COST_MODEL]} cost model (x)",
                    x=0.01, y=0.995, ha="left", fontsize=10)
    figure.text(0.02, 0.005, "white: the kernel is longer than the input (no such call); "
                "circles: a measurement at most an octave longer or shorter", fontsize=8)
    figure.tight_layout(rect=(0, 0.03, 1, 0.86))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return by_source


def _samples(count: int) -> str:
    """A length as people write it: 256, 512, 1k, 2k, ... 256k."""
    return f"{count // 1024}k" if count >= 1024 and count % 1024 == 0 else str(count)


def speedup_chart(path: Path, tuned: list[Tuned]) -> None:
    """Draw the measured speed-up of each winner over F.conv1d: one bar per tuned signature,
    sorted, coloured by the winning strategy, on a log axis labelled in plain factors (the
    distribution, which a scatter against the kernel size piled up at 1.0)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    plt = _pyplot()
    colour = {strategy.name: strategy.colour for strategy in all_strategies()}
    bars = sorted((t.speedup, t.winner) for t in tuned if t.speedup is not None)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    if bars:
        axis.bar(range(len(bars)), [speedup for speedup, _ in bars], width=1.0,
                 color=[colour.get(winner, "0.5") for _, winner in bars], alpha=0.8)
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_yscale("log")
    axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.yaxis.set_minor_locator(LogLocator(base=10, subs=()))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    axis.set_xlim(-0.5, max(len(bars), 1) - 0.5)
    axis.set_xlabel(f"tuned signatures, sorted ({len(bars)})")
    axis.set_ylabel("F.conv1d time / winner time")
    axis.set_title("measured speed-up over F.conv1d (1x: F.conv1d itself won)")
    winners = [name for name in colour if any(winner == name for _, winner in bars)]
    axis.legend([plt.Rectangle((0, 0), 1, 1, color=colour[name], alpha=0.8)
                 for name in winners], winners, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def geometric_mean(values: list[float]) -> float:
    """exp(mean(log(values))): the average of ratios (speed-ups, regrets)."""
    return math.exp(statistics.fmean(math.log(v) for v in values))


def summary(device: tuning_db.DeviceRecord, tuned: list[Tuned], failed: int,
            cells: dict[str, list[Cell]], evaluation: str | None) -> str:
    """The markdown summary."""
    lines = ["# autoconv report", "",
             f"Device `{device.device_id}`: {device.cpu_model}, {device.torch_threads} torch "
             f"threads" + (f", GPU {device.gpu_name}" if device.gpu_name else "")
             + f", torch {device.torch_version}.", "",
             f"- signatures tuned: {len(tuned)}",
             f"- candidates failed or disqualified: {failed}", "",
             "| winner | signatures | share |", "|---|---:|---:|"]
    wins = Counter(t.winner for t in tuned)
    for name in (strategy.name for strategy in all_strategies()):
        lines.append(f"| {name} | {wins.get(name, 0)} | {wins.get(name, 0) / len(tuned):.0%} |")
    speedups = [t.speedup for t in tuned if t.speedup is not None]
    lines += ["", "## Speed-up over F.conv1d (measured)", ""]
    if speedups:
        lines += [f"- signatures where F.conv1d was timed: {len(speedups)}",
                  f"- geometric mean: {geometric_mean(speedups):.2f}x; median "
                  f"{statistics.median(speedups):.2f}x; largest {max(speedups):.1f}x",
                  f"- signatures where another strategy beats F.conv1d: "
                  f"{sum(s > 1 for s in speedups)}"]
    else:
        lines.append("F.conv1d was not timed for any tuned signature (pruned as hopeless).")
    lines += ["", "## Winners map", "", "![winners map](winners_map.png)", "",
              "Cells answered by: " + ", ".join(f"{source} {len(answered)}"
                                                for source, answered in cells.items()), ""]
    overruled = Counter((cell.selector_pick, cell.strategy) for cell in cells[MEASURED_NEARBY]
                        if cell.selector_pick != cell.strategy)
    if overruled:
        lines += ["Where a nearby measurement names another winner than the selector's answer "
                  "in mode `predict`, the map draws the measurement's; the selector would "
                  "pick otherwise in these cells (measure them with `autoconv warm`):", "",
                  "| selector picks | measured nearby | cells |", "|---|---|---:|"]
        lines += [f"| {pick} | {measured} | {number} |"
                  for (pick, measured), number in sorted(overruled.items())]
        lines.append("")
    lines += ["![speed-up](speedup.png)", "", "## Predictor", ""]
    lines.append(evaluation if evaluation is not None else
                 f"Fewer than {MIN_SIGNATURES_FOR_EVALUATION} tuned signatures: not evaluated "
                 f"(run `autoconv warm --grid`).")
    return "\n".join(lines) + "\n"


def make_report(out_dir: Path, device: torch.device | str = "cpu",
                channels: tuple[int, ...] = (1, 16, 64)) -> list[Path]:
    """Write the report for ``device`` from the configured database into ``out_dir``.

    Raises:
        ReportError: no valid measurement for this device, or matplotlib is missing.
    """
    from autoconv.prediction.evaluation import cross_validate, markdown
    from autoconv.prediction.training_data import offered, sample_of
    from autoconv.settings import settings

    target = torch.device(device)
    record = device_record(target)
    with tuning_db.connect(settings.db_url) as db:
        measurements = [m for _, m in db.measurements(record.device_id)]
    tuned = tuned_signatures(measurements)
    failed = sum(not m.ok for m in measurements)
    samples = offered(sample_of(m) for m in measurements if m.ok)
    if not tuned:
        raise ReportError(f"no measurements for this device ({record.device_id}); run "
                          f"`autoconv warm --suite` or `autoconv warm --grid` first")
    _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "winners_map.png", out_dir / "speedup.png", out_dir / "report.md"]
    cells = winners_map(paths[0], list(channels), target, tuned)
    speedup_chart(paths[1], tuned)
    evaluation = None
    if len(tuned) >= MIN_SIGNATURES_FOR_EVALUATION:
        evaluation = markdown(cross_validate(samples, folds=5))
    paths[2].write_text(summary(record, tuned, failed, cells, evaluation), encoding="utf-8")
    return paths
