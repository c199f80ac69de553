"""``autoconv report``: what the tuning database knows about this device, as pictures and text.

Writes three files into a folder:

* ``winners_map.png``: the strategy each (kernel size, length) gets, one panel per channel
  count (by default the channel counts measured most often), with every measured signature
  of a panel's channel count drawn where it lies (:mod:`autoconv.offline.report_map`);
* ``speedup.png``: the measured speed-up of each decision over ``F.conv1d``, one named bar
  per signature where ``F.conv1d`` itself was timed, with its provenance; the others are
  listed as not compared (:mod:`autoconv.offline.report_speedup`);
* ``report.md``: the device, what was tuned, winners by strategy, speed-up figures, the
  signatures not compared, and the predictor's grouped cross-validation scores, with what
  regret means and each picker's worst pick (:mod:`autoconv.offline.report_regret`).

Decisions are read from the stored rows as the selector reads them
(:mod:`autoconv.offline.report_data`); nothing is timed here.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

import torch

import tuning_db
from autoconv.offline.report_data import (
    Tuned,
    geometric_mean,
    measured_channels,
    tuned_signatures,
)
from autoconv.offline.report_map import MEASURED_NEARBY, WinnersMap, winners_map_figure
from autoconv.offline.report_plot import ReportError, pyplot, save
from autoconv.offline.report_speedup import (
    MAX_BARS,
    compared,
    not_compared,
    not_compared_text,
    speedup_chart,
)
from autoconv.storage.store import device_record
from autoconv.strategies import all_strategies

__all__ = ["MIN_SIGNATURES_FOR_EVALUATION", "ReportError", "Tuned", "geometric_mean",
           "make_report", "summary", "tuned_signatures", "winners_map"]

#: Fewest tuned signatures for which the predictor is cross-validated in the report.
MIN_SIGNATURES_FOR_EVALUATION = 20


def winners_map(path: Path, channels: list[int], device: torch.device,
                tuned: list[Tuned]) -> WinnersMap:
    """Write the winners map (:func:`~autoconv.offline.report_map.winners_map_figure`) to
    ``path`` as a PNG; returns what it shows."""
    drawn = winners_map_figure(channels, device, tuned)
    save(drawn.figure, path)
    return drawn


def _speedup_lines(tuned: list[Tuned]) -> list[str]:
    lines = ["", "## Speed-up over F.conv1d (measured)", ""]
    timed = compared(tuned)
    speedups = [t.speedup for t in timed if t.speedup is not None]
    if speedups:
        provisional = sum(t.provisional is not None for t in timed)
        lines += [f"- signatures where F.conv1d was timed: {len(speedups)}"
                  + (f" (the chart draws the {MAX_BARS} largest)" if len(timed) > MAX_BARS
                     else ""),
                  (f"- geometric mean: {geometric_mean(speedups):.2f}x; median "
                   f"{statistics.median(speedups):.2f}x; largest {max(speedups):.1f}x "
                   f"({timed[0].signature.short()}, {timed[0].provenance})"),
                  (f"- signatures where another strategy beats F.conv1d: "
                   f"{sum(s > 1 for s in speedups)}"),
                  (f"- provisional decisions among them (few samples, or timed on a busy "
                   f"machine; `autoconv warm` measures them again): {provisional}")]
    else:
        lines.append("F.conv1d was not timed for any tuned signature.")
    missing = not_compared(tuned)
    if missing:
        lines += ["", (f"Not compared: F.conv1d not timed (too slow to time within the budget, "
                       f"or not measured) for {len(missing)} signature"
                       f"{'s' * (len(missing) != 1)}; no speed-up is claimed for them:"), ""]
        lines += [f"- {not_compared_text(t)}" for t in missing]
    return lines


def _map_lines(drawn: WinnersMap) -> list[str]:
    lines = ["", "## Winners map", "", "![winners map](winners_map.png)", "",
             "Cells answered by: " + ", ".join(f"{source} {len(answered)}"
                                               for source, answered in drawn.cells.items()),
             "", f"Measured signatures drawn on the map (diamonds): {len(drawn.points)} of "
             f"{len(drawn.points) + len(drawn.elsewhere)}"
             + (f"; the others have input channels without a panel: `autoconv report "
                f"--channels {','.join(map(str, drawn.suggested))}` shows them"
                if drawn.elsewhere else "."), ""]
    overruled = Counter((cell.selector_pick, cell.strategy)
                        for cell in drawn.cells[MEASURED_NEARBY]
                        if cell.selector_pick != cell.strategy)
    if overruled:
        lines += [("Where a nearby measurement names another winner than the selector's answer "
                   "in mode `predict`, the map draws the measurement's; the selector would "
                   "pick otherwise in these cells (measure them with `autoconv warm`):"), "",
                  "| selector picks | measured nearby | cells |", "|---|---|---:|"]
        lines += [f"| {pick} | {measured} | {number} |"
                  for (pick, measured), number in sorted(overruled.items())]
        lines.append("")
    return lines


def summary(device: tuning_db.DeviceRecord, tuned: list[Tuned], failed: int,
            drawn: WinnersMap, evaluation: str | None) -> str:
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
    lines += _speedup_lines(tuned)
    lines += _map_lines(drawn)
    lines += ["![speed-up](speedup.png)", "", "## Predictor", ""]
    lines.append(evaluation if evaluation is not None else
                 f"Fewer than {MIN_SIGNATURES_FOR_EVALUATION} tuned signatures: not evaluated "
                 f"(run `autoconv warm --grid`).")
    return "\n".join(lines) + "\n"


def make_report(out_dir: Path, device: torch.device | str = "cpu",
                channels: tuple[int, ...] | None = None) -> list[Path]:
    """Write the report for ``device`` from the configured database into ``out_dir``.

    Args:
        out_dir: the folder to write into (made if missing).
        device: the device whose measurements are reported.
        channels: the winners map's panels (channel counts); None: the input channel counts
            measured most often (at most three), so that the map shows the measurements.

    Returns:
        The paths written: the winners map, the speed-up chart, the summary.

    Raises:
        ReportError: no valid measurement for this device, or matplotlib is missing.
    """
    from autoconv.offline.report_regret import evaluation_markdown
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
    pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "winners_map.png", out_dir / "speedup.png", out_dir / "report.md"]
    panels = list(channels) if channels else measured_channels(tuned)
    drawn = winners_map(paths[0], panels, target, tuned)
    speedup_chart(paths[1], tuned)
    evaluation = None
    if len(tuned) >= MIN_SIGNATURES_FOR_EVALUATION:
        evaluation = evaluation_markdown(samples, folds=5)
    paths[2].write_text(summary(record, tuned, failed, drawn, evaluation), encoding="utf-8")
    return paths
