"""``Conv1dStream``: a causal conv1d fed a signal chunk by chunk, exact, without latency or
with the latency the user allows.

The stream's outputs, concatenated, are ``F.conv1d(x_all, weight, bias, padding=0)`` on the
whole signal left-padded with ``dilation * (K - 1)`` zeros: the causal convolution, one output
sample per input sample, each chunk's outputs returned as soon as the chunk arrives (with
``latency=L``: ``L`` samples late, output ``n`` being that of input ``n - L``, the first
``L`` zeros). Which streaming strategy computes it (stateful direct ``F.conv1d``, uniformly or
non-uniformly partitioned overlap-save, on blocks larger than the chunk when the latency
allows) is chosen by measurement, per stream signature (batch, channels, kernel, chunk size,
latency, dtype, device), and stored in the tuning database like the decisions of conv1d
calls (:class:`~autoconv.tuning.stream_selector.StreamSelector`).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from autoconv.choice import StreamChoice
from autoconv.signature import Signature
from autoconv.strategies.streaming import RAMPS, StreamEngine
from autoconv.streaming.arguments import check_bias, copied, count, positive_int, rate

#: Where a choice's time was measured rather than predicted.
_MEASURED = ("measured", "database", "corrected")


class Conv1dStream:
    """A causal 1-D convolution computed chunk by chunk (see the module docstring).

    ``stream(x)`` takes a chunk ``(B, C_in, n)`` (or unbatched ``(C_in, n)``) of any length
    ``n <= chunk_size``, shorter chunks at any time, and returns its ``n`` outputs
    ``(B, C_out, n)``. The first chunk fixes the batch size (and, in mode ``tune``, measures
    the strategies for the stream's signature once, within ``autoconv.settings.budget_s``:
    call :meth:`prepare` before a real-time loop to do it ahead); :meth:`reset` starts a new
    signal, after which the batch size may change; :meth:`flush` gives the tail (a reverb's
    decay) as if zeros were fed.

    Inference only: the weight and bias are copied when the stream is made (later changes
    to them, or to a module's parameters, do not reach it), nothing is recorded for
    autograd, and a chunk that requires gradients while grad mode is on is refused. Works
    under ``torch.no_grad`` and ``torch.inference_mode``; on CUDA, once prepared, one full
    chunk (``stream(x, out=y)`` with ``n == chunk_size``, no shorter chunk since the last
    reset) can be captured in a CUDA graph and replayed for every following chunk
    (:meth:`set_weight` and its crossfade run outside a graph: a graph captured before a
    swap replays the old response; capture again once :attr:`crossfade_remaining` is 0; a
    stream with a latency keeps Python-side state per chunk and cannot be captured). A
    stream is state: feed it from one thread at a time.

    :meth:`set_weight` changes the weight (the impulse response) while the stream runs, with
    a crossfade, keeping the tuned strategy and the signal's state.

    Args:
        weight: ``(C_out, C_in / groups, K)``, float32 or float64 (``stateful_direct`` also
            takes the dtypes ``F.conv1d`` takes).
        bias: ``(C_out,)`` or None.
        dilation, groups: as for ``F.conv1d`` (stride is 1, padding is causal).
        chunk_size: the longest chunk ``stream`` accepts (the one tuned for).
        latency: samples the outputs may come late (default 0): output ``n`` is then that of
            input ``n - latency``, the first ``latency`` outputs are zeros, and
            :meth:`flush` gives the delayed samples with the tail (flush ``history +
            latency`` samples for all of it). A latency lets the tuner consider blocks of
            up to ``chunk_size + latency`` samples (larger partitions: fewer operations per
            sample); the work of a block is then done by the chunk that completes it, so
            chunks take uneven times (the tuner compares their average). The decision is
            stored per latency.
        choice: run this choice instead of asking the process's stream selector.
        sample_rate: samples per second the stream must keep up with (optional). When the
            decision carries a measured per-chunk time longer than a chunk's real-time
            budget (``chunk_size / sample_rate``), the stream warns once, with the figures
            and what to do (:attr:`real_time_factor`).

    Raises:
        TypeError, ValueError: malformed arguments (a weight not 3-D, groups that do not
            divide the channels, a bias of the wrong shape or dtype, a chunk size below 1).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                 dilation: int = 1, groups: int = 1, chunk_size: int, latency: int = 0,
                 choice: StreamChoice | None = None, sample_rate: float | None = None
                 ) -> None:
        if not isinstance(weight, torch.Tensor) or weight.dim() != 3:
            shape = list(weight.shape) if isinstance(weight, torch.Tensor) else type(weight)
            raise ValueError(f"Conv1dStream(): weight must be (out_channels, in_channels / "
                             f"groups, kernel_size), got {shape}")
        if not weight.is_floating_point():
            raise TypeError(f"Conv1dStream(): weight must be floating point, not {weight.dtype}")
        self.dilation = positive_int(dilation, "dilation")
        self.groups = positive_int(groups, "groups")
        self.chunk_size = positive_int(chunk_size, "chunk_size")
        self._latency = count(latency, "latency", "Conv1dStream()")
        self.sample_rate = rate(sample_rate)
        self._warned_slow = False
        out_channels, in_per_group, kernel = weight.shape
        if out_channels % self.groups or 0 in weight.shape:
            raise ValueError(f"Conv1dStream(): weight {list(weight.shape)} does not suit "
                             f"groups={self.groups} (out_channels must be a positive multiple "
                             "of groups, and no dimension may be 0)")
        check_bias(bias, weight, "Conv1dStream()")
        self._weight, self._bias = copied(weight, bias)
        self.in_channels = in_per_group * self.groups
        self.out_channels = out_channels
        self.kernel_size = kernel
        self._requested = choice
        self._engine: StreamEngine | None = None
        self._choice: StreamChoice | None = None
        self._batch = 0
        self._fresh = True  # no sample since the stream was made or reset
        self._live: Any = None  # mode live: the exploration of the stream's rivals
        self._unbatched = False
        self._silence: torch.Tensor | None = None
        self._fading = 0  # samples of a crossfade still to come

    # -- facts --------------------------------------------------------------------------------

    @property
    def history(self) -> int:
        """Input samples each output depends on besides its own: ``dilation * (K - 1)``."""
        return self.dilation * (self.kernel_size - 1)

    @property
    def latency(self) -> int:
        """Samples of delay the stream adds: output ``n`` is that of input ``n - latency``."""
        return self._latency

    @property
    def real_time_factor(self) -> float | None:
        """The decision's measured time of one full chunk over the chunk's real-time budget
        at :attr:`sample_rate` (above 1: slower than real time); None before the decision,
        without a sample rate, or when the time was predicted rather than measured."""
        choice = self._choice
        if (choice is None or self.sample_rate is None or not choice.median_s
                or choice.origin not in _MEASURED):
            return None
        return choice.median_s / (self.chunk_size / self.sample_rate)

    @property
    def choice(self) -> StreamChoice | None:
        """The strategy the stream runs (None until the first chunk or :meth:`prepare`)."""
        return self._choice

    @property
    def dtype(self) -> torch.dtype:
        return self._weight.dtype

    @property
    def device(self) -> torch.device:
        return self._weight.device

    def signature(self, batch: int = 1) -> Signature:
        """The stream's signature for ``batch`` rows (what decisions are stored under)."""
        return Signature.of_stream(batch, self._weight, dilation=self.dilation,
                                   groups=self.groups, chunk_size=self.chunk_size,
                                   latency=self._latency)

    def __repr__(self) -> str:
        strategy = self._choice.strategy if self._choice is not None else "not chosen yet"
        return (f"Conv1dStream({self.in_channels} -> {self.out_channels}, K={self.kernel_size}"
                f", dilation={self.dilation}, groups={self.groups}, chunk_size="
                f"{self.chunk_size}{f', latency={self._latency}' if self._latency else ''}, "
                f"{self.dtype}, {self.device}: {strategy})")

    # -- life cycle ---------------------------------------------------------------------------

    def prepare(self, batch: int = 1) -> StreamChoice:
        """Choose the strategy for ``batch`` rows (measuring it in mode ``tune``, unless the
        database knows it) and allocate the stream's buffers now, rather than on the first
        chunk; the stream starts from silence.

        Returns:
            The choice.

        Raises:
            RuntimeError: the stream is under way with another batch size (reset it first).
        """
        batch = positive_int(batch, "batch")
        if not self._fresh and batch != self._batch:
            raise RuntimeError(f"Conv1dStream: the stream is under way with batch {self._batch}"
                               f"; call reset() before preparing batch {batch}")
        self._fresh = True
        if self._engine is not None and batch == self._batch:
            self.reset()
            return self._choice  # type: ignore[return-value]
        signature = self.signature(batch)
        choice = self._requested or self._selector().choose(signature, self.device)
        self._engine = self._build(choice, batch)
        self._choice, self._batch, self._silence, self._fading = choice, batch, None, 0
        self._live = None if self._requested else self._exploration(signature, choice, batch)
        self._warn_if_slower_than_real_time()
        return choice

    def _build(self, choice: Any, batch: int) -> Any:
        """An engine of ``choice`` (a StreamChoice or a tuning Candidate) for ``batch``:
        ordinary tensors even when built under ``torch.inference_mode`` (a stream may be
        fed outside it later)."""
        params = choice.params_dict if isinstance(choice, StreamChoice) else dict(choice.params)
        strategy = choice.strategy_impl if isinstance(choice, StreamChoice) else choice.strategy
        with torch.no_grad(), torch.inference_mode(False):
            return strategy.engine(self._weight, self._bias, dilation=self.dilation,
                                   groups=self.groups, batch=batch, chunk_size=self.chunk_size,
                                   latency=self._latency, **params)

    def _exploration(self, signature: Signature, choice: StreamChoice, batch: int) -> Any:
        """Mode live: the exploration of the stream's rivals on its own chunks (None when
        the choice was measured, or nothing is explored)."""
        from autoconv.runtime.dispatch import dispatcher

        return dispatcher.stream_selector.exploration(
            signature, self.device, choice, build=lambda c: self._build(c, batch),
            weight=self._weight, bias=self._bias, dilation=self.dilation, groups=self.groups,
            clock=dispatcher.live_clock, load=dispatcher.live_load)

    def _step(self, chunk: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
        """One chunk through the engine (through the exploration while it is under way;
        the stream runs the winner once it took over)."""
        live = self._live
        if self._fading:
            self._fading = max(0, self._fading - chunk.shape[-1])
        if live is None:
            return self._engine.step(chunk, out)  # type: ignore[union-attr]
        result = live.step(self._engine, chunk, out)
        self._follow(live)
        return result

    def _follow(self, live: Any) -> None:
        """Take the exploration's outcome once it has one: the winner's engine, or the
        measured decision for the engine the stream already runs."""
        if live.replacement is not None:
            self._engine, self._choice = live.replacement
        elif live.under_way:
            return
        elif live.decision is not None and live.decision.strategy_impl is \
                self._choice.strategy_impl and live.decision.params == self._choice.params:
            self._choice = live.decision
        self._live = None
        self._warn_if_slower_than_real_time()

    def _warn_if_slower_than_real_time(self) -> None:
        """Warn once when the measured per-chunk time exceeds the real-time budget."""
        factor = self.real_time_factor
        if factor is None or factor <= 1 or self._warned_slow:
            return
        self._warned_slow = True
        choice = self._choice
        budget_ms = self.chunk_size / self.sample_rate * 1e3  # type: ignore[operator]
        warnings.warn(
            f"autoconv: this stream cannot keep up with {self.sample_rate:g} Hz: "
            f"{choice.strategy} measured {choice.median_s * 1e3:.3g} ms per "  # type: ignore
            f"{self.chunk_size}-sample chunk, whose real-time budget is {budget_ms:.3g} ms "
            f"({factor:.2f}x real time, {torch.get_num_threads()} torch thread(s)). Remedies: "
            f"a larger chunk_size; torch.set_num_threads(1) when the CPU is shared with other "
            f"work or the chunks are small; and check that the machine was not busy when it "
            f"was measured (autoconv select shows whether the decision is provisional)",
            RuntimeWarning, stacklevel=4)

    @property
    def crossfade_remaining(self) -> int:
        """Samples of a crossfade (:meth:`set_weight`) still to come, counted in samples
        streamed from the swap (with a :attr:`latency` its outputs ramp that much later); 0
        when none is under way: a swap then cuts nothing short."""
        return self._fading

    def set_weight(self, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                   crossfade: int = 0, ramp: str = "linear") -> None:
        """Change the weight (the impulse response) while the stream runs.

        From the next chunk, the outputs move from the old response to the new one over
        ``crossfade`` samples, exactly as if two streams, one of each weight, had both been
        fed the whole signal since the last reset and their outputs mixed sample by sample:
        output ``i`` of the ramp (``i = 0 .. crossfade - 1``, from the next chunk's first)
        is ``(1 - t) old + t new`` with ``t = (i + 1) / (crossfade + 1)`` (``ramp="linear"``)
        or ``cos(t pi / 2) old + sin(t pi / 2) new`` (``"equal_power"``: the same loudness
        for uncorrelated responses); later outputs are the new response's alone, and
        ``crossfade=0`` switches at once. A crossfade spans as many chunks as it needs. With
        a :attr:`latency`, the ramp starts with the outputs of the next chunk's samples,
        which come ``latency`` samples later (outputs already under way keep the old
        response).

        Cost: no re-tuning (the strategy and its parameters stay) and no replay (every
        strategy's state is the input's: the input history, or the spectra of past blocks).
        The new weight's spectra, and its share of the outputs the stream has already
        prepared, are computed here, during the call, with every buffer the crossfade
        needs: with ``out=``, no chunk allocates more than before, during the ramp or
        after. A chunk during the ramp computes both responses on the same state, sharing
        the input's transforms (less than twice a plain chunk); once it is over the old
        response is dropped.

        Rules: a swap while a crossfade is under way ends that one at once (the outputs
        jump from the mix to the response it was fading in, which is then faded out); wait
        for :attr:`crossfade_remaining` to reach 0 to avoid the jump. :meth:`reset` ends a
        crossfade (the new response stays). Before the first chunk or :meth:`prepare`, the
        weight is simply replaced. The weight and bias are copied (the bias may come or go:
        None is no bias). Mode ``live``: an exploration of the stream's rivals under way
        stops (its engines were built on the old weight); the stream keeps its strategy.

        Raises:
            ValueError: a weight of another shape (the stream's strategy was chosen for its
                shape: make a new stream for another), dtype or device, a bias that does not
                suit it, a negative ``crossfade`` or an unknown ``ramp``.
        """
        if not isinstance(weight, torch.Tensor) or weight.shape != self._weight.shape \
                or weight.dtype != self.dtype or weight.device != self.device:
            got = (f"{list(weight.shape)} {weight.dtype} on {weight.device}"
                   if isinstance(weight, torch.Tensor) else type(weight).__name__)
            raise ValueError(
                f"Conv1dStream.set_weight(): the new weight must have the stream's shape, dtype "
                f"and device ({list(self._weight.shape)} {self.dtype} on {self.device}), got "
                f"{got}: the stream's strategy was chosen for that shape; make a new "
                f"Conv1dStream for another")
        check_bias(bias, weight, "Conv1dStream.set_weight()")
        crossfade = count(crossfade, "crossfade", "Conv1dStream.set_weight()")
        if ramp not in RAMPS:
            raise ValueError(f"Conv1dStream.set_weight(): ramp must be one of "
                             f"{', '.join(map(repr, RAMPS))}, not {ramp!r}")
        self._weight, self._bias = copied(weight, bias)
        self._live = None
        if self._engine is None:
            return
        with torch.no_grad(), torch.inference_mode(False):
            self._engine.set_weight(self._weight, self._bias, crossfade=crossfade, ramp=ramp)
        self._fading = crossfade

    def reset(self) -> None:
        """Start a new signal: forget every sample seen (the next chunk may have another
        batch size); a crossfade under way ends."""
        self._fading = 0
        if self._engine is not None:
            with torch.no_grad():
                self._engine.reset()
        if self._live is not None:
            self._live.reset()
            self._follow(self._live)
        self._fresh = True

    @staticmethod
    def _selector() -> Any:
        from autoconv.runtime.dispatch import dispatcher

        return dispatcher.stream_selector

    # -- streaming ----------------------------------------------------------------------------

    def stream(self, x: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """The causal outputs of the next chunk.

        Args:
            x: ``(B, C_in, n)`` or ``(C_in, n)``, ``n <= chunk_size``, of the weight's dtype
                and device.
            out: where to write the outputs (``(B, C_out, n)``, or ``(C_out, n)`` for an
                unbatched chunk); with it, the partitioned strategy allocates nothing.

        Returns:
            ``(B, C_out, n)`` (``(C_out, n)`` for an unbatched chunk): ``out`` when given.

        Raises:
            ValueError: ``n > chunk_size``.
            RuntimeError: the wrong number of dimensions or channels, another dtype or
                device than the weight's, a batch size other than the stream's (before
                :meth:`reset`), a bad ``out``, or a chunk that requires gradients while
                grad mode is on.
        """
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0)
            out = None if out is None else out.unsqueeze(0)
        elif x.dim() != 3:
            raise RuntimeError(f"Conv1dStream: expected a chunk (batch, {self.in_channels}, n)"
                               f" or ({self.in_channels}, n), got {list(x.shape)}")
        batch, channels, n = x.shape
        if channels != self.in_channels:
            raise RuntimeError(f"Conv1dStream: expected {self.in_channels} input channels, got "
                               f"a chunk of {channels}: {list(x.shape)}")
        if n > self.chunk_size:
            raise ValueError(f"Conv1dStream: a chunk of {n} samples is longer than the "
                             f"stream's chunk_size {self.chunk_size}")
        if x.dtype != self._weight.dtype or x.device != self._weight.device:
            raise RuntimeError(f"Conv1dStream: the chunk is {x.dtype} on {x.device}, the stream"
                               f" {self._weight.dtype} on {self._weight.device}")
        if x.requires_grad and torch.is_grad_enabled():
            raise RuntimeError("Conv1dStream is inference-only: the chunk requires gradients; "
                               "stream under torch.no_grad() or torch.inference_mode(), or "
                               "detach it")
        if batch != self._batch or self._engine is None:
            if not self._fresh:
                raise RuntimeError(f"Conv1dStream: the stream has batch {self._batch}, this "
                                   f"chunk {batch}; call reset() to start a new signal")
            self.prepare(batch)
        if out is not None and (out.shape != (batch, self.out_channels, n)
                                or out.dtype != x.dtype or out.device != x.device):
            raise RuntimeError(f"Conv1dStream: out must be ({batch}, {self.out_channels}, {n}) "
                               f"{x.dtype} on {x.device}, got {list(out.shape)} {out.dtype} "
                               f"on {out.device}")
        self._fresh, self._unbatched = False, unbatched
        if n == 0:
            result = out if out is not None else x.new_empty(batch, self.out_channels, 0)
        else:
            with torch.no_grad():
                result = self._step(x, out)
        return result[0] if unbatched else result

    __call__ = stream

    def flush(self, n: int) -> torch.Tensor:
        """The next ``n`` outputs as if ``n`` zero samples were streamed (the tail of the
        signal: a reverb's decay); the stream moves on by ``n`` samples.

        Raises:
            ValueError: ``n`` negative.
            RuntimeError: nothing was streamed or prepared yet (the batch size is unknown).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"Conv1dStream.flush(): n must be an int >= 0, got {n!r}")
        if self._engine is None:
            raise RuntimeError("Conv1dStream.flush(): the batch size is unknown; stream a chunk "
                               "or call prepare(batch) first")
        out = self._weight.new_empty(self._batch, self.out_channels, n)
        if self._silence is None:
            self._silence = self._weight.new_zeros(self._batch, self.in_channels,
                                                   self.chunk_size)
        with torch.no_grad():
            for start in range(0, n, self.chunk_size):
                end = min(n, start + self.chunk_size)
                self._step(self._silence[..., :end - start], out[..., start:end])
        self._fresh = self._fresh and n == 0
        return out[0] if self._unbatched else out
