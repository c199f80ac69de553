"""What the stream tuner times: random streams of a signature, one engine per candidate, and
the check of each against ``F.conv1d``.

As for conv1d calls, tuning never touches the user's tensors: the weight, bias and chunks are
random, of the signature's shapes, on its device. One timed call streams a whole *cycle* of
full chunks, as many as the longest period among the candidates (a partition of ``k``
chunks does its products spread over ``k`` chunks), so that every candidate's time is that
of the same chunks and its average chunk is what it is charged for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autoconv import plain
from autoconv.signature import Signature
from autoconv.tuning.candidates import Candidate, ConvInputs, Reference
from autoconv.tuning.outcome import Outcome
from autoconv.tuning.timing import Clock, settle_allocator
from autoconv.tuning.trial import Budget, WarmedUp


def last_outputs(signal: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 signature: Signature, n: int) -> torch.Tensor:
    """``F.conv1d``'s outputs of the last ``n`` samples of a stream of ``signature`` fed
    ``signal`` from silence: the causal convolution, ``signature.latency`` samples late (the
    first ``latency`` outputs of the stream are zeros)."""
    s = signature
    history = s.dilation * (s.kernel_size - 1)
    end = signal.shape[-1] + history
    seen = F.pad(signal, (s.padding_left, 0))[..., end - n - history:end]
    with torch.no_grad():
        outputs = plain.conv1d(seen, weight, bias, 1, 0, s.dilation, s.groups)
        early = s.latency - (signal.shape[-1] - n)  # outputs of the latency: zeros
        if early > 0:
            outputs[..., :early] = 0
    return outputs


def cycle_of(signature: Signature, candidates: Sequence[Candidate]) -> int:
    """Chunks per timed call: the longest period among ``candidates`` (their periods are
    powers of two, so each divides it)."""
    return max((c.strategy.period(signature, dict(c.params)) for c in candidates), default=1)


@dataclass
class StreamBench:
    """Random tensors of a stream signature: weight, bias, a cycle of full chunks, and the
    reference output of the cycle's last chunk (``F.conv1d`` on what it sees, late by the
    signature's latency)."""

    signature: Signature
    weight: torch.Tensor
    bias: torch.Tensor
    chunks: list[torch.Tensor]
    reference: Reference

    @classmethod
    def random(cls, signature: Signature, device: torch.device, cycle: int) -> StreamBench:
        """A bench of ``cycle`` chunks for ``signature`` on ``device``."""
        s = signature
        inputs = ConvInputs.random(
            Signature(s.batch, s.in_channels, s.out_channels, cycle * s.length, s.kernel_size,
                      1, 0, 0, s.dilation, s.groups, s.dtype, s.device), device)
        signal = inputs.input.detach()
        weight, bias = inputs.weight.detach(), inputs.bias.detach()
        last = last_outputs(signal, weight, bias, s, s.length)
        return cls(signature, weight, bias, list(signal.split(s.length, dim=-1)),
                   Reference.of(last))


class StreamCall:
    """One candidate's engine on the bench, as the timer sees it: calling it streams the
    bench's chunks (a cycle) and returns the last chunk's output.

    Attributes:
        candidate: what it runs.
    """

    __slots__ = ("_chunks", "_engine", "_out", "candidate")

    def __init__(self, candidate: Candidate, bench: StreamBench) -> None:
        s = bench.signature
        self.candidate = candidate
        with torch.no_grad():
            self._engine = candidate.strategy.engine(
                bench.weight, bench.bias, dilation=s.dilation, groups=s.groups, batch=s.batch,
                chunk_size=s.length, latency=s.latency, **dict(candidate.params))
        self._chunks = bench.chunks
        self._out = bench.chunks[0].new_empty(s.batch, s.out_channels, s.length)

    def stream(self, chunks: Sequence[torch.Tensor]) -> torch.Tensor:
        """Stream ``chunks``; the last one's output."""
        with torch.no_grad():
            for chunk in chunks:
                self._engine.step(chunk, self._out)
        return self._out

    def __call__(self) -> torch.Tensor:
        return self.stream(self._chunks)


#: During warm-up, a candidate whose first chunk takes this many times the best average
#: chunk of the candidates warmed up so far is not streamed further (stateful direct on a
#: reverb's kernel: hundreds of times): a first chunk carries one-time costs (FFT plans),
#: hence the wide margin.
PROBE_DROP_FACTOR = 4.0


def _probe(call: StreamCall, chunks: Sequence[torch.Tensor], budget: Budget, *, stop: bool
           ) -> tuple[torch.Tensor, bool]:
    """Stream ``chunks`` one at a time; with ``stop``, give up once the budget has run out
    (a block's work can take a large share of it: a 480k-tap stateful direct delayed by
    1024 samples took 3.3 s for its first period). The last output, and whether it gave up.
    """
    output = None
    for index in range(len(chunks)):
        output = call.stream(chunks[index:index + 1])
        if stop and index + 1 < len(chunks) and budget.remaining() <= 0:
            return output, True
    return output, False


def warm_up_streams(candidates: Sequence[Candidate], bench: StreamBench, budget: Budget,
                    tolerance: float, drop_factor: float | None = PROBE_DROP_FACTOR,
                    thread_clock: Clock | None = None
                    ) -> tuple[list[WarmedUp], list[Outcome]]:
    """Build each candidate's engine and stream one cycle from silence, in order, while the
    budget allows, then check the last chunk against ``F.conv1d``.

    The first candidate always runs. A later one streams its first period alone (its own
    period of chunks: a stream with a latency does a block's work on the chunk that
    completes the block, so a first chunk alone can cost nothing; it gives up when the budget
    runs out within it), then stops (skipped, no outcome) when the rest of the cycle at that pace would overrun the budget, or (racing,
    unless ``drop_factor`` is None) when its average chunk took ``drop_factor`` times the
    best average chunk so far. One that raises, or whose error exceeds ``tolerance``,
    becomes an ``ok=False`` outcome (it never aborts tuning). With ``thread_clock`` (the
    calling thread's CPU clock, when candidates are timed on it), the times that rank
    candidates are taken on it; the budget is spent on the wall clock.

    Returns:
        (the candidates ready to be timed, with the seconds of their warm-up cycle; the
        outcomes of those that failed).
    """
    warmed: list[WarmedUp] = []
    rejected: list[Outcome] = []
    chunks = bench.chunks
    stopwatch = thread_clock or budget.clock
    settle_allocator()
    for candidate in candidates:
        if warmed and budget.remaining() <= 0:
            break
        start = budget.clock()
        try:
            call = StreamCall(candidate, bench)
            period = min(len(chunks), max(1, candidate.strategy.period(
                bench.signature, dict(candidate.params))))
            started, thread_started = budget.clock(), stopwatch()
            output, overran = _probe(call, chunks[:period], budget, stop=bool(warmed))
            if overran:
                continue  # its first period alone outlasted the budget
            probe_wall, probe = budget.clock() - started, stopwatch() - thread_started
            if warmed:
                best = min(w.warm_up_s for w in warmed) / len(chunks)
                rest = len(chunks) / period - 1  # periods left in the cycle
                if probe_wall * rest > budget.remaining() or (
                        drop_factor is not None and probe / period > drop_factor * best):
                    continue
            output = call.stream(chunks[period:]) if len(chunks) > period else output
        except Exception as error:  # a failing candidate loses; it never aborts tuning
            rejected.append(Outcome.failed(candidate, budget.clock() - start,
                                           f"{type(error).__name__}: {error}"))
            continue
        took = stopwatch() - thread_started
        error = bench.reference.error(output)
        if not error <= tolerance:  # NaN fails too
            rejected.append(Outcome.disqualified(candidate, took / len(chunks), error,
                                                 tolerance))
            continue
        warmed.append(WarmedUp(call, error, took))  # type: ignore[arg-type]
    return warmed, rejected
