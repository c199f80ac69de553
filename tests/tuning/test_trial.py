"""The steps of one tuning run: budget, output check, warm-up and the outcome records."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from autoconv.signature import Signature
from autoconv.strategies import Strategy, get
from autoconv.tuning.candidates import REFERENCE_WINDOW, Candidate, ConvInputs
from autoconv.tuning.outcome import NOTE_LENGTH, Outcome
from autoconv.tuning.timing import Timing
from autoconv.tuning.trial import PROBE_SHARE, Budget, OutputCheck, probe_reference, warm_up

CPU = torch.device("cpu")
SIG = Signature(2, 3, 4, 300, 5, 1, 2, 2, 1, 1, "float32", "cpu", False)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def candidate(name: str, run, *, reference: bool = False) -> Candidate:
    return Candidate(Strategy(name, run, reference=reference), ())


def taking(clock: Clock, seconds: float, offset: float = 0.0):
    """A strategy that advances ``clock`` by ``seconds`` and returns F.conv1d (+ ``offset``)."""
    def run(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        clock.now += seconds
        return F.conv1d(input, weight, bias, stride, padding, dilation, groups) + offset
    return run


def test_the_budget_keeps_a_tenth_and_scales_predictions_only_up() -> None:
    clock = Clock()
    budget = Budget.of(clock, 2.0)
    assert budget.deadline == pytest.approx(1.8)
    assert budget.fits(1.8) and not budget.fits(1.81) and budget.fits(None)
    budget.observe(0.1, 0.05)  # the cost model was pessimistic: predictions stay as they are
    assert budget.expected(1.0) == 1.0
    budget.observe(0.1, 0.5)
    budget.observe(0.1, 0.4)  # median error 4x: a 0.5 s prediction is now expected at 2 s
    assert budget.expected(0.5) == pytest.approx(2.0) and not budget.fits(0.5)
    clock.now = 1.0
    assert budget.fits_a_round(0.8) and not budget.fits_a_round(0.81)
    clock.now = 1.8
    assert not budget.fits(None) and budget.remaining() == pytest.approx(0.0)


def test_the_check_uses_the_reference_candidates_own_output_when_it_runs() -> None:
    inputs = ConvInputs.random(SIG, CPU)
    check = OutputCheck(inputs, 1e-4, reference_runs=True)
    assert check.reference is None
    plain = inputs.reference()
    other = candidate("other", taking(Clock(), 0.0))
    assert check.error(other, plain + 1.0) is None  # nothing to compare with yet
    assert check.error(Candidate(get("direct"), ()), plain) == 0.0
    assert check.error(other, plain * 1.5) == pytest.approx(0.5, rel=1e-5)
    assert not check.passes(0.5) and check.passes(None) and not check.passes(math.nan)


def test_the_check_computes_a_windowed_reference_when_f_conv1d_does_not_run() -> None:
    long = Signature(1, 1, 1, 4000, 3, 1, 1, 1, 1, 1, "float32", "cpu", False)
    inputs = ConvInputs.random(long, CPU)
    check = OutputCheck(inputs, 1e-4, reference_runs=False)
    assert check.reference is not None
    assert check.reference.output.shape[-1] == REFERENCE_WINDOW < long.output_length
    assert check.error(candidate("x", taking(Clock(), 0.0)), inputs.reference()) == 0.0


def test_the_tolerance_defaults_per_dtype() -> None:
    half = Signature(**{**SIG.as_dict(), "dtype": "float16"})
    assert OutputCheck.tolerance_for(SIG, None) == 1e-4
    assert OutputCheck.tolerance_for(half, None) == 1e-2
    assert OutputCheck.tolerance_for(half, 0.5) == 0.5


def test_warm_up_captures_failures_and_disqualifies_wrong_outputs() -> None:
    clock = Clock()

    def exploding(*args, **kwargs):
        clock.now += 0.25
        raise MemoryError("no room")

    inputs = ConvInputs.random(SIG, CPU)
    survivors = [(candidate("direct", taking(clock, 0.1), reference=True), None),
                 (candidate("exploding", exploding), None),
                 (candidate("wrong", taking(clock, 0.1, offset=0.5)), None),
                 (candidate("right", taking(clock, 0.2)), None)]
    warmed, rejected = warm_up(survivors, inputs, Budget.of(clock, 100.0),
                               OutputCheck(inputs, 1e-4, reference_runs=True))
    assert [w.call.candidate.name for w in warmed] == ["direct", "right"]
    assert [w.warm_up_s for w in warmed] == pytest.approx([0.1, 0.2])
    failed, disqualified = rejected
    assert (failed.candidate.name, failed.ok, failed.median_s) == ("exploding", False,
                                                                   pytest.approx(0.25))
    assert failed.note == "failed: MemoryError: no room"
    assert disqualified.candidate.name == "wrong" and not disqualified.ok
    # off by 0.5 everywhere, relative to the largest output of the reference (direct's own)
    scale = inputs.reference().abs().max().item()
    assert disqualified.error == pytest.approx(0.5 / scale)
    assert disqualified.median_s == pytest.approx(0.1)  # its warm-up call
    assert disqualified.note == f"disqualified: error {disqualified.error:.3g} > 0.0001"


@pytest.mark.parametrize("reused", [False, True])
def test_a_layers_kept_spectra_are_computed_before_its_warm_up_call_is_timed(reused) -> None:
    clock = Clock()

    def spectral(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
                 spectrum_cache=None):
        def transform():
            clock.now += 1.0  # the weight's spectra
            return weight
        if spectrum_cache is None:
            transform()
        else:
            spectrum_cache.get(weight, "layout", transform)
        clock.now += 0.1
        return F.conv1d(input, weight, bias, stride, padding, dilation, groups)

    signature = dataclasses.replace(SIG, weight_reused=reused)
    inputs = ConvInputs.random(signature, CPU)
    layer = Candidate(Strategy("spectral", spectral, takes_spectrum_cache=True), ())
    warmed, _ = warm_up([(layer, None)], inputs, Budget.of(clock, 100.0),
                        OutputCheck(inputs, 1e-4, reference_runs=False))
    # a layer computes them once (before the timed call, on the budget); a functional
    # call on every call
    assert warmed[0].warm_up_s == pytest.approx(0.1 if reused else 1.1)
    assert clock.now == pytest.approx(1.2 if reused else 1.1)
    assert warmed[0].call() is not None and clock.now == pytest.approx(1.3 if reused else 2.2)


def test_warm_up_runs_the_first_candidate_whatever_its_prediction_then_keeps_to_the_budget(
        ) -> None:
    clock = Clock()
    inputs = ConvInputs.random(SIG, CPU)
    survivors = [(candidate("a", taking(clock, 0.5)), 5.0),  # over the budget, runs anyway
                 (candidate("b", taking(clock, 0.1)), 0.6),  # 0.6 s > 0.4 s left: skipped
                 (candidate("c", taking(clock, 0.1)), 0.3)]  # fits
    warmed, rejected = warm_up(survivors, inputs, Budget.of(clock, 1.0),
                               OutputCheck(inputs, 1e-4, reference_runs=False))
    assert [w.call.candidate.name for w in warmed] == ["a", "c"] and rejected == []
    assert clock.now == pytest.approx(0.6)  # a and c ran; b was never called


def test_f_conv1d_eating_the_budget_does_not_take_its_first_rivals_turn() -> None:
    clock = Clock()
    inputs = ConvInputs.random(SIG, CPU)
    survivors = [(candidate("direct", taking(clock, 3.5), reference=True), 0.2),  # 3.5 s
                 (candidate("fast", taking(clock, 0.002)), 0.001),  # runs all the same
                 (candidate("other", taking(clock, 0.002)), 0.001)]  # the budget is spent
    warmed, _ = warm_up(survivors, inputs, Budget.of(clock, 2.0),
                        OutputCheck(inputs, 1e-4, reference_runs=True))
    assert [w.call.candidate.name for w in warmed] == ["direct", "fast"]


def test_outcome_records_keep_their_fields_and_a_short_note() -> None:
    c = candidate("x", taking(Clock(), 0.0))
    timed = Outcome.timed(c, Timing(0.0, 0.1, 7), 1e-6)
    assert (timed.median_s, timed.spread_s, timed.samples, timed.error, timed.ok) == (
        1e-9, 0.1, 7, 1e-6, True)  # a clock's zero is stored as the shortest time
    failed = Outcome.failed(c, 0.5, "x" * 500)
    assert (failed.ok, failed.samples, len(failed.note)) == (False, 1, NOTE_LENGTH)
    assert Outcome.disqualified(c, 0.5, 0.02, 1e-4).note == "disqualified: error 0.02 > 0.0001"


def test_autograds_first_call_costs_are_paid_before_any_candidate_is_timed() -> None:
    # The first torch.autograd.grad with output gradients in a process imports torch's
    # symbolic-shapes machinery (most of a second): it must not be charged to a candidate.
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    script = textwrap.dedent("""
        import sys, torch, torch.nn.functional as F
        from autoconv.signature import Signature
        from autoconv.strategies import Strategy
        from autoconv.tuning.candidates import Candidate, ConvInputs
        from autoconv.tuning.trial import PROBE_SHARE, Budget, OutputCheck, probe_reference, warm_up
        seen = []
        def run(*args, **kwargs):
            seen.append("torch.fx.experimental.symbolic_shapes" in sys.modules)
            return F.conv1d(*args)
        assert "torch.fx.experimental.symbolic_shapes" not in sys.modules
        sig = Signature(1, 2, 2, 50, 3, 1, 0, 0, 1, 1, "float32", "cpu", True)
        inputs = ConvInputs.random(sig, torch.device("cpu"))
        warm_up([(Candidate(Strategy("x", run), ()), None)], inputs,
                Budget.of(lambda: 0.0, 1.0), OutputCheck(inputs, 1e-4, reference_runs=False))
        print(seen)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[True]"


def test_warm_up_skips_the_rest_of_a_strategy_that_proved_clearly_slower() -> None:
    clock = Clock()
    inputs = ConvInputs.random(SIG, CPU)

    def blocks(seconds: float):
        def run(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, block=0):
            clock.now += seconds
            return F.conv1d(input, weight, bias, stride, padding, dilation, groups)
        return run

    def padded(seconds: float):
        def run(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                pre_pad=0):
            clock.now += seconds * (0.1 if pre_pad else 1.0)  # another code path
            return F.conv1d(input, weight, bias, stride, padding, dilation, groups)
        return run

    ola = Strategy("ola", blocks(0.6), size_params=frozenset({"block"}))
    direct = Strategy("direct", padded(0.5), reference=True)
    survivors = [(Candidate(direct, ()), 0.1),                # takes 0.5 s: 5x its prediction
                 (Candidate(direct, (("pre_pad", 1),)), 0.2),  # another kind: runs, 0.05 s
                 (Candidate(ola, (("block", 1),)), 0.2),   # takes 0.6 s: 3x its prediction
                 (Candidate(ola, (("block", 2),)), 0.21),  # so expected at 0.63 s: skipped
                 (candidate("fft", taking(clock, 0.3)), 0.3)]  # a kind not seen yet: runs
    warmed, _ = warm_up(survivors, inputs, Budget.of(clock, 100.0),
                        OutputCheck(inputs, 1e-4, reference_runs=True))
    assert [w.call.candidate.label for w in warmed] == [
        "direct", "direct(pre_pad=1)", "ola(block=1)", "fft"]
    everything, _ = warm_up(survivors, inputs, Budget.of(clock, 100.0),
                            OutputCheck(inputs, 1e-4, reference_runs=True), drop_factor=None)
    assert len(everything) == 5  # race=False: every candidate that fits the budget


class WindowedInputs:
    """Tuning inputs whose ``F.conv1d`` window takes ``per_output`` fake seconds per output
    (plus ``fixed`` per call) on ``clock``; records the windows asked for."""

    def __init__(self, signature: Signature, clock: Clock, per_output: float,
                 fixed: float = 0.0) -> None:
        self.real = ConvInputs.random(signature, CPU)
        self.signature = signature
        self.clock, self.per_output, self.fixed = clock, per_output, fixed
        self.windows: list[int] = []

    def leading_as_called(self, window):
        output, computed = self.real.leading_as_called(window)
        self.windows.append(computed)
        self.clock.now += self.fixed + self.per_output * computed
        return output, computed


LONG = Signature(1, 1, 1, 100_000, 9, 1, 4, 4, 1, 1, "float32", "cpu", False)


def test_the_reference_probe_grows_its_window_to_the_whole_call_when_it_is_cheap() -> None:
    clock = Clock()
    inputs = WindowedInputs(LONG, clock, per_output=1e-8, fixed=1e-3)  # overhead-bound
    probe = probe_reference(inputs, Budget.of(clock, 2.0))
    assert probe.whole and inputs.windows[0] < 2 * REFERENCE_WINDOW
    assert inputs.windows[-1] == LONG.output_length
    assert probe.estimate_s == pytest.approx(1e-3 + 1e-8 * LONG.output_length)
    torch.testing.assert_close(probe.output, inputs.real.reference())


def test_the_reference_probe_stops_at_a_tenth_of_the_budget_and_scales_its_window() -> None:
    clock = Clock()
    inputs = WindowedInputs(LONG, clock, per_output=1e-4)  # the whole call: 10 s
    budget = Budget.of(clock, 2.0)
    probe = probe_reference(inputs, budget)
    assert not probe.whole and probe.estimate_s == pytest.approx(10.0)
    assert inputs.windows[-1] * 1e-4 <= PROBE_SHARE * 1.8 + 1e-9  # no window over its share
    assert clock.now < 0.5  # the probe itself stayed a small part of the 2 s budget
    grad = WindowedInputs(dataclasses.replace(LONG, requires_grad=True), Clock(), 1e-4)
    assert probe_reference(grad, Budget.of(grad.clock, 2.0)).estimate_s == pytest.approx(30.0)


def test_a_probe_on_a_busy_machine_leaves_f_conv1d_out_only_beyond_the_whole_budget_left(
        ) -> None:
    from autoconv.tuning.contention import MachineLoad

    busy = MachineLoad(read_runnable=lambda: 2, cores=torch.get_num_threads())
    clock = Clock()
    inputs = WindowedInputs(LONG, clock, per_output=1.2e-5)  # the whole call: 1.2 s
    budget = Budget.of(clock, 2.0)
    quiet_probe = probe_reference(inputs, budget)
    assert not quiet_probe.disturbed and quiet_probe.too_long_for(budget)
    clock.now = 0.0
    busy_probe = probe_reference(WindowedInputs(LONG, clock, per_output=1.2e-5), budget, busy)
    assert busy_probe.disturbed and not busy_probe.too_long_for(budget)  # 1.2 s: run it
    clock.now = 0.0
    far = probe_reference(WindowedInputs(LONG, clock, per_output=3e-5), budget, busy)
    assert far.disturbed and far.too_long_for(budget)  # 3 s: estimated, even busy


def test_on_the_threads_cpu_clock_warm_up_and_probe_rank_by_it_and_spend_the_wall_clock(
        ) -> None:
    """Timed at one thread on a busy machine, a warm-up call's time (what ranks and races
    candidates) and the probe's estimate of F.conv1d are on the thread's CPU clock; the
    budget is spent on the wall clock, which also counts the waits for a core."""
    wall, cpu = Clock(), Clock()

    def waiting(seconds: float, wait: float, offset: float = 0.0):
        run = taking(cpu, seconds, offset)

        def stalled(*args, **kwargs):
            wall.now += seconds + wait
            return run(*args, **kwargs)
        return stalled

    inputs = ConvInputs.random(SIG, CPU)
    survivors = [(candidate("direct", waiting(0.1, 0.3), reference=True), None),
                 (candidate("fast", waiting(0.05, 0.0)), None)]
    budget = Budget.of(wall, 100.0)
    warmed, _ = warm_up(survivors, inputs, budget,
                        OutputCheck(inputs, 1e-4, reference_runs=True), thread_clock=cpu)
    assert [w.warm_up_s for w in warmed] == pytest.approx([0.1, 0.05])
    assert budget.remaining() == pytest.approx(budget.deadline - 0.45)

    class Stalled(WindowedInputs):
        def leading_as_called(self, window):
            before = self.clock.now
            result = super().leading_as_called(window)
            wall.now += 2 * (self.clock.now - before)  # waited as long again as it ran
            return result

    wall.now = cpu.now = 0.0
    probe = probe_reference(Stalled(LONG, cpu, per_output=1e-4), Budget.of(wall, 2.0),
                            thread_clock=cpu)
    assert probe.thread_estimate_s == pytest.approx(10.0) == probe.ranked_s
    assert probe.estimate_s == pytest.approx(20.0)  # the wall clock's, for the budget


class Compiling:
    """A preparation that takes ``seconds`` on ``clock`` (or raises), estimated at
    ``estimate_s``: what compiling a kernel looks like to the tuner."""

    def __init__(self, clock: Clock, seconds: float, estimate_s: float,
                 error: Exception | None = None) -> None:
        self.clock, self.seconds, self.estimate, self.error = clock, seconds, estimate_s, error
        self.prepared: list[Signature] = []

    def estimate_s(self, signature, params) -> float:
        return self.estimate

    def __call__(self, signature, params, input, weight, bias) -> None:
        self.clock.now += self.seconds
        if self.error is not None:
            raise self.error
        self.prepared.append(signature)


def prepared_candidate(name: str, run, preparation: Compiling) -> Candidate:
    return Candidate(Strategy(name, run, preparation=preparation), ())


def test_a_preparation_is_charged_to_the_budget_not_to_the_candidates_warm_up() -> None:
    clock = Clock()
    inputs = ConvInputs.random(SIG, CPU)
    compiling = Compiling(clock, 3.0, estimate_s=2.0)
    survivors = [(candidate("direct", taking(clock, 0.1), reference=True), None),
                 (prepared_candidate("compiled", taking(clock, 0.01), compiling), None),
                 (candidate("after", taking(clock, 0.1)), None)]
    warmed, rejected = warm_up(survivors, inputs, Budget.of(clock, 5.0),
                               OutputCheck(inputs, 1e-4, reference_runs=True))
    assert compiling.prepared == [SIG] and rejected == []
    assert [w.call.candidate.name for w in warmed] == ["direct", "compiled", "after"]
    assert warmed[1].warm_up_s == pytest.approx(0.01)  # its call alone, not the 3 s compile
    # 0.1 + 3 + 0.01 s of the 4.5 s the budget times: "after" (no prediction) still fits
    survivors[2:] = [(candidate("after", taking(clock, 0.1)), 2.0)]  # 2 s: no longer fits
    clock.now = 0.0
    compiling.prepared.clear()
    warmed, _ = warm_up(survivors, inputs, Budget.of(clock, 5.0),
                        OutputCheck(inputs, 1e-4, reference_runs=True))
    assert [w.call.candidate.name for w in warmed] == ["direct", "compiled"]


def test_a_preparation_expected_to_overrun_the_budget_is_skipped_with_f_conv1d_in_hand(
        ) -> None:
    clock = Clock()
    inputs = ConvInputs.random(SIG, CPU)
    compiling = Compiling(clock, 3.0, estimate_s=10.0)
    survivors = [(candidate("direct", taking(clock, 0.1), reference=True), None),
                 (prepared_candidate("compiled", taking(clock, 0.01), compiling), 0.001)]
    warmed, rejected = warm_up(survivors, inputs, Budget.of(clock, 2.0),
                               OutputCheck(inputs, 1e-4, reference_runs=True))
    assert [w.call.candidate.name for w in warmed] == ["direct"] and rejected == []
    assert compiling.prepared == [] and clock.now == pytest.approx(0.1)
    # alone (nothing else to fall back on) it is prepared whatever its estimate
    warmed, _ = warm_up(survivors[1:], inputs, Budget.of(clock, 2.0),
                        OutputCheck(inputs, 1e-4, reference_runs=False))
    assert [w.call.candidate.name for w in warmed] == ["compiled"]


def test_a_preparation_that_raises_is_a_failed_outcome() -> None:
    clock = Clock()
    inputs = ConvInputs.random(SIG, CPU)
    compiling = Compiling(clock, 0.5, estimate_s=0.1, error=RuntimeError("no compiler"))
    survivors = [(candidate("direct", taking(clock, 0.1), reference=True), None),
                 (prepared_candidate("compiled", taking(clock, 0.01), compiling), None)]
    warmed, rejected = warm_up(survivors, inputs, Budget.of(clock, 5.0),
                               OutputCheck(inputs, 1e-4, reference_runs=True))
    assert [w.call.candidate.name for w in warmed] == ["direct"]
    (failed,) = rejected
    assert failed.candidate.name == "compiled" and not failed.ok
    assert failed.median_s == pytest.approx(0.5)
    assert failed.note == "failed: RuntimeError: no compiler"
