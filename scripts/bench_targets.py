"""The performance and accuracy targets of the strategies benchmark (issue 2), as data.

Each target names the suite workload it is measured on (so that a test can check the suite
still has it) and is evaluated on the ratios of medians measured in one run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench_results import WorkloadResult, format_ratio, ratio

#: float32 results must be within this of float64 F.conv1d, relative to the output's max.
ERROR_LIMIT = 1e-4


@dataclass(frozen=True)
class Outcome:
    """A target's measured value, whether it passed, and a short note."""

    measured: str
    passed: bool | None  # None: could not be measured in this run
    note: str = ""


@dataclass(frozen=True)
class Target:
    """One target: a label, the workload it needs (None: every workload) and its check."""

    label: str
    workload: str | None
    check: Callable[[list[WorkloadResult]], Outcome]


def _find(results: list[WorkloadResult], name: str) -> WorkloadResult | None:
    return next((r for r in results if r.workload.name == name), None)


def _ratio_target(name: str, limit: float, against: str) -> Callable[[list[WorkloadResult]],
                                                                     Outcome]:
    """best strategy / (F.conv1d | scipy | fastest peer) on workload ``name`` <= ``limit``."""
    def check(results: list[WorkloadResult]) -> Outcome:
        result = _find(results, name)
        if result is None:
            return Outcome("not run", None)
        best = result.best_strategy()
        if against == "F.conv1d":
            other = result.direct
        elif against == "fastest peer":
            other = result.fastest_peer()
        else:
            other = result.peers.get(against)
        value = ratio(best, other)
        if value is None:
            return Outcome("-", None, f"{against} not timed")
        note = f"{best.label if best else '-'} vs {other.label if other else '-'}"
        return Outcome(format_ratio(value), value <= limit, note)
    return check


def _fft_beats_peers(results: list[WorkloadResult]) -> Outcome:
    """Where an FFT strategy beats F.conv1d, it is >= 2x faster than the fastest peer."""
    worst: tuple[float, str] | None = None
    failures = []
    for result in results:
        fft = result.best_fft()
        if fft is None or (ratio(fft, result.direct) or 2.0) >= 1.0:
            continue
        value = ratio(fft, result.fastest_peer())
        if value is None:
            continue
        if worst is None or value > worst[0]:
            worst = (value, result.workload.name)
        if value > 0.5:
            failures.append(result.workload.name)
    if worst is None:
        return Outcome("-", None, "no FFT strategy beat F.conv1d on a shape with a peer")
    note = f"worst: {worst[1]}" + (f"; over 0.5x: {', '.join(failures)}" if failures else "")
    return Outcome(format_ratio(worst[0]), not failures, note)


def _error_everywhere(results: list[WorkloadResult]) -> Outcome:
    """float32 error of every strategy (every parameter set) <= ERROR_LIMIT on every shape."""
    worst: tuple[float, str] | None = None
    for result in results:
        if result.workload.dtype != "float32" or result.max_strategy_error is None:
            continue
        if worst is None or result.max_strategy_error > worst[0]:
            worst = (result.max_strategy_error, result.workload.name)
    if worst is None:
        return Outcome("-", None, "no strategy other than direct ran")
    return Outcome(f"{worst[0]:.1e}", worst[0] <= ERROR_LIMIT, f"worst: {worst[1]}")


def ratio_target(label: str, name: str, limit: float, against: str) -> Target:
    """The target "best strategy on workload ``name`` <= ``limit`` x ``against``"."""
    return Target(label, name, _ratio_target(name, limit, against))


TARGETS: tuple[Target, ...] = (
    ratio_target("4x64x64 L4096 K65: best <= 0.12x F.conv1d", "many_channel_k65", 0.12,
                 "F.conv1d"),
    ratio_target("4x64x64 L4096 K511: best <= 0.04x F.conv1d", "many_channel_k511", 0.04,
                 "F.conv1d"),
    ratio_target("1 ch B8 L16000 K1023: best <= 0.03x F.conv1d", "audio_fir_k1023", 0.03,
                 "F.conv1d"),
    ratio_target("1 ch B2 L96000 K8191: best <= 0.7x scipy.oaconvolve", "long_reverb_k8191",
                 0.7, "scipy.oaconvolve"),
    ratio_target("depthwise 4x256 L2048 K2048: best <= 0.5x fastest peer",
                 "depthwise_long_k2048", 0.5, "fastest peer"),
    Target("where an FFT strategy beats F.conv1d: <= 0.5x fastest peer", None, _fft_beats_peers),
    Target(f"float32 error <= {ERROR_LIMIT:g} of max |output| on every shape", None,
           _error_everywhere),
)


def targets_table(results: list[WorkloadResult]) -> list[list[str]]:
    """Rows (target, measured, PASS/MISS/not measured, note) for the markdown table."""
    rows = []
    for target in TARGETS:
        outcome = target.check(results)
        verdict = {True: "PASS", False: "MISS", None: "not measured"}[outcome.passed]
        rows.append([target.label, outcome.measured, verdict, outcome.note])
    return rows
