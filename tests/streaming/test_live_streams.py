"""Mode ``live`` for streams: the first chunk is answered at once (the prior), the rivals are
explored as shadows beside the stream's own chunks, the winner is stored and the stream
hands over to it without a gap; every output stays the causal convolution's.

The unit tests script each engine's seconds (a wrapper moves a manual clock on every step);
the stream tests use the ``exploring`` fixture (every chunk a second, a quiet machine)."""

from __future__ import annotations

import pytest
import torch

import autoconv
import tuning_db
from autoconv.choice import StreamChoice
from autoconv.runtime.dispatch import dispatcher
from autoconv.signature import Signature
from autoconv.storage.store import device_record, signature_record
from autoconv.strategies.streaming import get
from autoconv.tuning.candidates import Candidate
from autoconv.tuning.contention import QuietMachine
from autoconv.tuning.exploration import LIVE_NOTE
from autoconv.tuning.stream_exploration import StreamExploration
from tests.steady import ManualClock

from .helpers import assert_close, causal, lengths

CPU = torch.device("cpu")


class Scripted:
    """A real engine whose every full chunk "takes" ``seconds`` on ``clock``."""

    def __init__(self, engine, clock: ManualClock, seconds: float) -> None:
        self.engine, self.clock, self.seconds = engine, clock, seconds

    def step(self, chunk, out=None):
        self.clock.now += self.seconds
        return self.engine.step(chunk, out)

    def reset(self) -> None:
        self.engine.reset()


class Broken(Scripted):
    def step(self, chunk, out=None):
        raise RuntimeError("no kernel for this")


class Wrong(Scripted):
    def step(self, chunk, out=None):
        return super().step(chunk, out) * 1.5


def candidate(name: str, **params) -> Candidate:
    return Candidate(get(name), tuple(sorted(params.items())))


class Bench:
    """One stream signature explored by hand: a weight, the answer's engine, the scripted
    rivals, and the decisions settled."""

    def __init__(self, seconds: dict[Candidate, float], answer: Candidate, *, kernel=300,
                 chunk=64, wrappers=None, overhead=0.1, call_factor=4.0) -> None:
        torch.manual_seed(0)
        self.clock = ManualClock()
        self.weight = torch.randn(2, 1, kernel, dtype=torch.float64) / kernel ** 0.5
        self.bias = torch.randn(2, dtype=torch.float64)
        self.signature = Signature.of_stream(1, self.weight, dilation=1, groups=2,
                                             chunk_size=chunk)
        self.seconds, self.wrappers = seconds, wrappers or {}
        self.settled: list = []
        self.engine = self.build(answer)
        self.exploration = StreamExploration(
            self.signature, answer,
            [(c, c.strategy.flops(self.signature, dict(c.params))) for c in seconds],
            build=self.build, period=lambda c: c.strategy.period(self.signature,
                                                                  dict(c.params)),
            weight=self.weight, bias=self.bias, dilation=1, groups=2, settle=self.settle,
            overhead=overhead, call_factor=call_factor, tolerance=1e-9, clock=self.clock,
            load=QuietMachine())

    def build(self, c: Candidate):
        engine = c.strategy.build(self.weight, self.bias, dilation=1, groups=2, batch=1,
                                  chunk_size=self.signature.length, **dict(c.params))
        return self.wrappers.get(c, Scripted)(engine, self.clock, self.seconds[c])

    def settle(self, outcomes):
        self.settled.append(outcomes)
        best = min((o for o in outcomes if o.ok), key=lambda o: o.median_s)
        return StreamChoice.make(best.candidate.strategy, dict(best.candidate.params),
                                 source="measured", median_s=best.median_s)

    def run(self, chunks: int, *, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Stream ``chunks`` chunks (random lengths with a seed) as Conv1dStream would,
        taking the replacement when it comes; (outputs, the causal reference)."""
        total = chunks * self.signature.length
        x = torch.randn(1, 2, total, dtype=torch.float64)
        outputs, start = [], 0
        with torch.no_grad():
            for n in lengths(total, self.signature.length, seed=seed):
                outputs.append(self.exploration.step(self.engine, x[..., start:start + n],
                                                     None).clone())
                start += n
                if self.exploration.replacement is not None:
                    self.engine = self.exploration.replacement[0]
                    self.exploration.replacement = None
        return torch.cat(outputs, -1), causal(x, self.weight, self.bias, groups=2)


ANSWER = candidate("partitioned", partition=64)
FASTER = candidate("partitioned", partition=128)
SLOWER = candidate("partitioned", partition=256)


def test_the_fastest_rival_is_found_handed_over_to_and_every_output_is_exact() -> None:
    bench = Bench({ANSWER: 100e-6, FASTER: 40e-6, SLOWER: 120e-6}, ANSWER)
    outputs, reference = bench.run(1500)
    assert_close(outputs, reference)
    [outcomes] = bench.settled
    timed = {o.candidate: o for o in outcomes}
    assert timed[FASTER].median_s == pytest.approx(40e-6)
    assert timed[ANSWER].median_s == pytest.approx(100e-6)
    assert timed[FASTER].note.startswith(LIVE_NOTE)
    assert isinstance(bench.engine, Scripted) and bench.engine.seconds == 40e-6  # handed over
    assert not bench.exploration.under_way


def test_exploration_stays_within_its_overhead_allowance() -> None:
    bench = Bench({ANSWER: 100e-6, FASTER: 90e-6, SLOWER: 110e-6}, ANSWER, overhead=0.1)
    chunks = 0
    x = torch.randn(1, 2, 64, dtype=torch.float64)
    with torch.no_grad():
        while bench.exploration.under_way and not bench.settled:
            bench.exploration.step(bench.engine, x, None)
            chunks += 1
            shadow_s = bench.exploration.extra_s
            # the shadows' seconds never run ahead of 10% of the answer's by more than one
            # cycle's worth (a cycle is paid for when it starts)
            assert shadow_s <= 0.1 * 100e-6 * chunks + 2 * 4 * 110e-6
    assert bench.settled and chunks > 100  # paid for by the chunks, slowly


def test_a_rival_expected_beyond_the_call_factor_is_never_run() -> None:
    calls = []

    class Counted(Scripted):
        def step(self, chunk, out=None):
            calls.append(1)
            return super().step(chunk, out)

    # the stateful direct engine of a 300-tap kernel: far more operations per chunk
    direct = candidate("stateful_direct")
    bench = Bench({ANSWER: 100e-6, FASTER: 50e-6, direct: 1e-3}, ANSWER,
                  wrappers={direct: Counted}, call_factor=2.0)
    outputs, reference = bench.run(800)
    assert_close(outputs, reference)
    assert calls == []  # answer + direct would be 11x the answer's chunk
    assert direct not in {o.candidate for o in bench.settled[0]}


@pytest.mark.parametrize("wrapper", [Broken, Wrong])
def test_a_rival_that_raises_or_is_wrong_loses_and_the_stream_never_sees_it(wrapper) -> None:
    bench = Bench({ANSWER: 100e-6, FASTER: 40e-6, SLOWER: 120e-6}, ANSWER,
                  wrappers={FASTER: wrapper})
    outputs, reference = bench.run(1500, seed=3)
    assert_close(outputs, reference)
    outcome = {o.candidate: o for o in bench.settled[0]}[FASTER]
    assert not outcome.ok
    assert outcome.note.startswith("failed" if wrapper is Broken else "disqualified")
    assert bench.engine.seconds == 100e-6  # the answer stays


def test_partial_chunks_give_no_samples_but_exact_outputs() -> None:
    bench = Bench({ANSWER: 100e-6, FASTER: 40e-6}, ANSWER)
    outputs, reference = bench.run(3000, seed=7)  # random lengths: few full cycles
    assert_close(outputs, reference)


def test_a_reset_during_the_handover_hands_over_at_once() -> None:
    bench = Bench({ANSWER: 100e-6, FASTER: 40e-6}, ANSWER, kernel=5000)
    x = torch.randn(1, 2, 64, dtype=torch.float64)
    with torch.no_grad():
        while not bench.settled:
            bench.exploration.step(bench.engine, x, None)
    assert bench.exploration.under_way  # 5000 samples of history to feed the winner
    bench.engine.reset()
    bench.exploration.reset()
    engine, choice = bench.exploration.replacement
    assert engine.seconds == 40e-6 and choice.params_dict == {"partition": 128}
    signal = torch.randn(1, 2, 640, dtype=torch.float64)
    with torch.no_grad():
        out = torch.cat([engine.step(c).clone() for c in signal.split(64, -1)], -1)
    assert_close(out, causal(signal, bench.weight, bench.bias, groups=2))


# -- through Conv1dStream ------------------------------------------------------------------


@pytest.mark.usefixtures("exploring")
@pytest.mark.parametrize("kernel,chunk", [(300, 64), (16, 32), (700, 128)])
def test_a_live_stream_explores_decides_and_stays_exact(kernel: int, chunk: int) -> None:
    torch.manual_seed(kernel)
    weight = torch.randn(3, 1, kernel, dtype=torch.float64) / kernel ** 0.5
    bias = torch.randn(3, dtype=torch.float64)
    stream = autoconv.Conv1dStream(weight, bias, groups=3, chunk_size=chunk)
    total = 600 * chunk
    x = torch.randn(2, 3, total, dtype=torch.float64)
    outputs, start, first = [], 0, None
    with torch.no_grad():
        for n in lengths(total, chunk, seed=kernel):
            outputs.append(stream(x[..., start:start + n]))
            first = first or stream.choice
            start += n
        for _ in range(400):  # full chunks: cycles complete, and the handover
            outputs.append(stream(x.new_zeros(2, 3, chunk)))
        outputs.append(stream.flush(3 * chunk))
    x = torch.cat([x, x.new_zeros(2, 3, 400 * chunk + 3 * chunk)], -1)
    assert_close(torch.cat(outputs, -1), causal(x, weight, bias, groups=3))
    assert stream._live is None, "exploration and handover done"
    assert stream.choice.origin == "measured" and first.origin != "measured"
    with tuning_db.connect(autoconv.settings.db_url) as db:
        rows = db.candidates(device_record(CPU).device_id, signature_record(stream.signature(2)))
    assert rows and all(row.note.startswith(LIVE_NOTE) for row in rows)
    # a new stream of the signature uses the stored decision and explores nothing
    dispatcher.reset()
    again = autoconv.Conv1dStream(weight, bias, groups=3, chunk_size=chunk)
    again.prepare(2)
    assert again.choice.origin == "database" and again._live is None


@pytest.mark.usefixtures("exploring")
def test_a_live_stream_hands_over_to_another_winner_without_a_gap(monkeypatch) -> None:
    # the prior answers partitioned; the decision (forced here) is stateful direct
    weight = torch.randn(2, 1, 700, dtype=torch.float64) / 700 ** 0.5
    stream = autoconv.Conv1dStream(weight, groups=2, chunk_size=64)
    assert stream.prepare().strategy_impl is get("partitioned")
    winner = StreamChoice.make(get("stateful_direct"), {}, source="measured", median_s=1e-5)
    selector = dispatcher.stream_selector
    adopt = selector.adopt
    monkeypatch.setattr(selector, "adopt", lambda *args: (adopt(*args), winner)[1])
    x = torch.randn(1, 2, 64 * 900, dtype=torch.float64)
    outputs = []
    with torch.no_grad():
        for chunk in x.split(64, -1):
            outputs.append(stream(chunk))
            if stream.choice is winner:
                break
        handed_over_at = len(outputs)
        outputs += [stream(chunk) for chunk in x[..., 64 * handed_over_at:].split(64, -1)]
    assert stream.choice is winner and 2 < handed_over_at < 900
    assert_close(torch.cat(outputs, -1), causal(x, weight, None, groups=2))


def test_a_stream_given_its_choice_explores_nothing(exploring) -> None:
    weight = torch.randn(1, 1, 300, dtype=torch.float64)
    choice = StreamChoice.make(get("partitioned"), {"partition": 64}, source="given")
    stream = autoconv.Conv1dStream(weight, chunk_size=64, choice=choice)
    stream.prepare()
    assert stream._live is None
