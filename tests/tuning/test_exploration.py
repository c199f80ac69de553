"""Mode ``live``'s exploration of one signature (autoconv.tuning.exploration), with a fake
clock that moves only when an arm runs, by the seconds it is scripted to take: which arm
runs on which call, the bounds on what exploration costs, the check, the decision."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from autoconv.signature import Signature
from autoconv.strategies import get
from autoconv.tuning.candidates import Candidate
from autoconv.tuning.contention import QuietMachine
from autoconv.tuning.exploration import LIVE_NOTE, SAMPLES, Exploration
from autoconv.tuning.outcome import Outcome
from tests.steady import ManualClock

X, W = torch.randn(2, 3, 400), torch.randn(3, 3, 9)
ARGS = (X, W, None, 1, 4, 1, 1)
EXPECTED = F.conv1d(*ARGS)
SIGNATURE = Signature.of(X, W, None, 1, 4)

PLAIN = Candidate(get("direct"), ())
FFT = Candidate(get("fft"), ())
OVERLAP = Candidate(get("overlap_add"), (("block_size", 128),))


class Script:
    """Arms that take scripted seconds on the fake clock, and log which ran."""

    #: the script under way (its clock charges F.conv1d's windows)
    current: Script | None = None

    def __init__(self, seconds: dict[Candidate, float], wrong: tuple[Candidate, ...] = ()
                 ) -> None:
        self.clock = ManualClock()
        self.seconds = seconds
        self.wrong = wrong
        self.ran: list[Candidate] = []

    def runner(self, candidate: Candidate) -> Callable[..., torch.Tensor]:
        def run(*args) -> torch.Tensor:
            self.ran.append(candidate)
            self.clock.now += self.seconds[candidate]
            output = F.conv1d(*args)
            return output + 1.0 if candidate in self.wrong else output
        return run


@pytest.fixture(autouse=True)
def _windows_take_their_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check's windows of F.conv1d (autoconv.plain.conv1d) take their share of the
    scripted F.conv1d's seconds on the clock of the script under way."""
    import autoconv.plain

    real = autoconv.plain.conv1d

    def windowed(*args, **kwargs):
        output = real(*args, **kwargs)
        script = Script.current
        if script is not None and PLAIN in script.seconds:
            script.clock.now += (script.seconds[PLAIN] * output.shape[-1]
                                 / EXPECTED.shape[-1])
        return output

    monkeypatch.setattr(autoconv.plain, "conv1d", windowed)
    yield
    Script.current = None


def explore(script: Script, answer: Candidate, predicted: dict[Candidate, float | None], *,
            calls: int, overhead: float = 0.1, call_factor: float = 4.0
            ) -> tuple[Exploration, list[list[Outcome]], list[torch.Tensor]]:
    """Drive ``calls`` calls through the exploration as the hot path does."""
    Script.current = script
    settled: list[list[Outcome]] = []
    exploration = Exploration(
        SIGNATURE, answer, [(c, p, script.runner(c)) for c, p in predicted.items()],
        settle=settled.append, overhead=overhead, call_factor=call_factor, tolerance=1e-4,
        clock=script.clock, load=QuietMachine())
    answer_run = script.runner(answer)
    outputs = []
    for _ in range(calls):
        if exploration.finished:
            outputs.append(answer_run(*ARGS))
            continue
        exploration.countdown -= 1
        if exploration.countdown <= 0:
            outputs.append(exploration.sampled(answer_run, *ARGS))
        else:
            outputs.append(answer_run(*ARGS))
    return exploration, settled, outputs


def test_the_first_call_is_never_explored_and_every_output_is_right() -> None:
    script = Script({PLAIN: 1e-3, FFT: 0.5e-3})
    exploration, settled, outputs = explore(script, PLAIN, {PLAIN: 1e-3, FFT: 0.5e-3},
                                            calls=1)
    assert not settled and exploration.countdown == 1 and script.ran == [PLAIN]
    exploration, settled, outputs = explore(script, PLAIN, {PLAIN: 1e-3, FFT: 0.5e-3},
                                            calls=200)
    for output in outputs:
        torch.testing.assert_close(output, EXPECTED)


def test_a_faster_rival_is_found_and_stored_as_measured_on_live_calls() -> None:
    # the answer (F.conv1d, by the safe prior) is 3x slower than fft, which costs nothing
    # extra to explore: every explored fft call saves time
    script = Script({PLAIN: 3e-3, FFT: 1e-3, OVERLAP: 2e-3})
    exploration, settled, _ = explore(script, PLAIN, {PLAIN: 3e-3, FFT: 1e-3, OVERLAP: 2e-3},
                                      calls=60)
    assert len(settled) == 1
    outcomes = {o.candidate: o for o in settled[0]}
    assert outcomes[FFT].median_s == pytest.approx(1e-3) and outcomes[FFT].samples == SAMPLES
    assert outcomes[FFT].note.startswith(LIVE_NOTE)
    assert outcomes[PLAIN].median_s == pytest.approx(3e-3)
    assert exploration.extra_s < 0  # exploring saved time


def test_exploration_costs_at_most_its_overhead_of_the_calls_it_rides_on() -> None:
    # the answer is the fastest; F.conv1d is 3x slower: each of its calls costs 2 ms extra,
    # paid from 10% of 1 ms per call
    script = Script({FFT: 1e-3, PLAIN: 3e-3})
    calls = 400
    exploration, settled, _ = explore(script, FFT, {FFT: 1e-3, PLAIN: 3e-3}, calls=calls)
    extra = script.clock.now - calls * 1e-3
    assert extra <= 0.1 * calls * 1e-3 + 3e-3  # the allowance, and at most one call beyond
    assert settled and {o.candidate for o in settled[0]} == {FFT, PLAIN}


def test_a_rival_expected_beyond_the_call_factor_is_never_run() -> None:
    # F.conv1d of a long kernel: 100x the answer. It never runs in full: the estimate stands
    script = Script({FFT: 1e-3, PLAIN: 100e-3})
    _, settled, _ = explore(script, FFT, {FFT: 1e-3, PLAIN: 100e-3}, calls=100)
    assert PLAIN not in script.ran
    reference = next(o for o in settled[0] if o.candidate == PLAIN)
    assert reference.note.startswith("estimated") and reference.samples == 1


def test_a_rival_that_fails_the_check_is_disqualified_and_the_call_answered_right() -> None:
    script = Script({PLAIN: 1e-3, FFT: 0.5e-3}, wrong=(FFT,))
    _, settled, outputs = explore(script, PLAIN, {PLAIN: 1e-3, FFT: 0.5e-3}, calls=40)
    for output in outputs:
        torch.testing.assert_close(output, EXPECTED)
    fft = next(o for o in settled[0] if o.candidate == FFT)
    assert not fft.ok and fft.note.startswith("disqualified")
    assert script.ran.count(FFT) == 1


def test_a_wrong_answer_is_caught_on_its_first_explored_call() -> None:
    script = Script({FFT: 1e-3, PLAIN: 2e-3}, wrong=(FFT,))
    exploration, settled, outputs = explore(script, FFT, {FFT: 1e-3, PLAIN: 2e-3}, calls=2)
    torch.testing.assert_close(outputs[1], EXPECTED)  # F.conv1d answered the checked call
    assert exploration.finished and not next(o for o in settled[0] if o.candidate == FFT).ok


def test_a_slow_rival_is_raced_out() -> None:
    script = Script({PLAIN: 1e-3, FFT: 0.9e-3, OVERLAP: 1.8e-3})
    _, settled, _ = explore(script, PLAIN, {PLAIN: 1e-3, FFT: 0.9e-3, OVERLAP: 0.5e-3},
                            calls=400)
    # dropped once clearly slower than the best: on its first call, or on its first sample
    assert script.ran.count(OVERLAP) <= 2
    assert all(o.samples < SAMPLES for o in settled[0] if o.candidate == OVERLAP)


def test_a_layers_arm_keeping_spectra_is_timed_without_their_one_time_transform() -> None:
    # as a layer's calls: the spectra are computed on the arm's first run and kept
    script = Script({PLAIN: 3e-3, FFT: 1e-3})
    kept: set[Candidate] = set()

    def runner(candidate: Candidate) -> Callable[..., torch.Tensor]:
        timed = script.runner(candidate)

        def run(*args) -> torch.Tensor:
            if candidate == FFT and candidate not in kept:
                kept.add(candidate)
                script.clock.now += 20e-3  # the weight's spectra: 20x the call itself
            return timed(*args)
        return run

    layer = dataclasses.replace(SIGNATURE, weight_reused=True)
    settled: list[list[Outcome]] = []
    Script.current = script
    exploration = Exploration(layer, PLAIN, [(c, 1e-3, runner(c)) for c in (PLAIN, FFT)],
                              settle=settled.append, overhead=1.0, call_factor=40.0,
                              tolerance=1e-4, clock=script.clock, load=QuietMachine())
    for _ in range(200):
        if exploration.finished:
            break
        exploration.countdown -= 1
        if exploration.countdown <= 0:
            torch.testing.assert_close(exploration.sampled(runner(PLAIN), *ARGS), EXPECTED)
    fft = next(arm for arm in exploration.arms if arm.candidate == FFT)
    assert fft.first_s == pytest.approx(1e-3)  # not 21 ms: it was not dropped for it
    assert settled and min(settled[0], key=lambda o: o.median_s).candidate == FFT
