"""Non-uniformly partitioned overlap-save streaming (Gardner's scheme, multi-stage): the head
of the kernel transformed with each chunk, later taps in progressively larger partitions
with larger transforms, exact and without latency (the plan: :mod:`.nonuniform_plan`; when
each stage works: :mod:`.stage_slots`; a stage's work: :mod:`.stage_engine`; the products:
:mod:`.stage_spectra`).

Per chunk, into buffers allocated once:

1. the chunk joins the input history (one buffer for the head and all stages, moved back by
   a copy now and then);
2. each stage does the work of the slots of its block that the chunk reaches: the transform
   of the ``2P`` samples that ended with the last block, which joins the spectra of past
   windows, the products of its partitions, the inverse transform, whose last ``P`` samples
   (the stage's outputs of the *next* block) are added to the outputs ahead (a ring that
   starts each sample at the bias);
3. the head: the last ``head_size`` samples of the history are transformed, multiplied by
   the spectrum of the head's taps and transformed back; the chunk's outputs are the last
   ``n`` samples of that plus the ring's (which then start again at the bias).

A stage's outputs of block ``j`` are its partitions ``q`` times the spectra of the windows
that ended with blocks ``j - 2 - q``: a stage starts at tap ``2P``, so they are complete one
whole block before they are needed. Every output is a sum of products of stored spectra,
recomputed for each block: nothing accumulates from one block to the next, so the stream
does not drift. Chunks of any length up to the chunk size may come at any time. No tensor is
allocated per chunk when ``out`` is given (torch's FFT may use a scratch buffer of its own).

A new weight (``set_weight``) keeps the state, which is the input's alone (the history, each
stage's spectra of past windows): its kernels' spectra are computed, and its outputs ahead
from the stored spectra (the blocks whose outputs are still to come, the sums under way),
as if it had been there from the start. During a crossfade the transforms of the input are
shared and each product and inverse transform is done for both weights.
"""

from __future__ import annotations

import torch

from autoconv.strategies.streaming.crossfade import Crossfade
from autoconv.strategies.streaming.nonuniform_plan import NonUniformPlan, schedule_of
from autoconv.strategies.streaming.stage_engine import StageEngine, complex_of
from autoconv.strategies.streaming.stage_slots import StageWork, schedule
from autoconv.strategies.streaming.stage_spectra import HeadKernel, HeadProduct, StageKernel


def lag_taps(weight: torch.Tensor, dilation: int) -> torch.Tensor:
    """The kernel by lag: ``h[..., l]`` multiplies the input ``l`` samples back (the weight
    flipped, with ``dilation - 1`` zeros between taps): ``(C_out, C_in / groups, L)``."""
    out_channels, in_per_group, kernel = weight.shape
    taps = weight.new_zeros(out_channels, in_per_group, dilation * (kernel - 1) + 1)
    taps[..., ::dilation] = weight.flip(-1)
    return taps


class _Response:
    """What one weight adds to the state: the head's and each stage's kernel, the outputs
    ahead ``(B, C_out, ring)`` (each sample starts at the bias) and the bias."""

    __slots__ = ("ahead", "ahead_rows", "aheads", "bias", "head", "stages")

    def __init__(self, head: HeadKernel, stages: list[StageKernel], ahead: torch.Tensor,
                 bias: torch.Tensor | None) -> None:
        self.head, self.stages, self.ahead, self.bias = head, stages, ahead, bias
        self.ahead_rows = ahead.view(-1, ahead.shape[-1])
        self.aheads = _Views(ahead, 2)

    def clear(self, ahead: torch.Tensor) -> None:
        """Outputs ahead start at the bias."""
        if self.bias is None:
            ahead.zero_()
        else:
            ahead.copy_(self.bias)


class NonUniformPartitioned:
    """The non-uniformly partitioned engine (see the module docstring).

    Args: ``weight`` (float32 or float64), ``bias``, ``dilation``, ``groups``, ``batch``,
    ``chunk_size`` as for :class:`~.partitioned.UniformPartitioned`; ``first``, ``growth``,
    ``largest``: the schedule (:class:`~.nonuniform_plan.NonUniformPlan`).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, dilation: int,
                 groups: int, batch: int, chunk_size: int, first: int, growth: int,
                 largest: int) -> None:
        out_channels, in_per_group, _ = weight.shape
        self.dilation = dilation
        span = dilation * (weight.shape[-1] - 1) + 1
        plan = self.plan = NonUniformPlan.of(span, chunk_size, first, growth, largest)
        size = plan.head_size
        layout = weight.new_empty(0, out_channels, in_per_group, size // 2 + 1,
                                  dtype=complex_of(weight.dtype))
        self._head = HeadProduct(layout, groups, batch)
        rows_in, rows_out = batch * in_per_group * groups, batch * out_channels
        self._head_time = weight.new_empty(batch, out_channels, size)
        pairs = 8.0 * batch * out_channels * in_per_group
        works = [StageWork(stage.partition // chunk_size, stage.fft_size, rows_in, rows_out,
                           stage.count, pairs * stage.bins) for stage in plan.stages]
        self._stages = [StageEngine(stage, weight, slots, groups=groups, batch=batch,
                               chunk=chunk_size)
                        for stage, slots in zip(plan.stages, schedule(works), strict=True)]
        #: history kept when the buffer moves back: every window a slot may still read
        self._kept = max(3 * plan.largest + chunk_size, size)
        self._history = weight.new_zeros(batch, in_per_group * groups,
                                         2 * self._kept + chunk_size)
        self._rows = self._history.view(rows_in, -1)
        self._like = weight.new_empty(batch, out_channels, chunk_size)
        self._places, self._windows = _Views(self._history, 2), _Views(self._rows, 1)
        self._tails = _Views(self._head_time, 2)
        self._fade: Crossfade | None = None
        self._set_responses([self._response(weight, bias)])
        self.reset()

    def _response(self, weight: torch.Tensor, bias: torch.Tensor | None) -> _Response:
        """The kernels of ``weight``, with outputs ahead at the bias."""
        taps = lag_taps(weight, self.dilation)
        plan = self.plan
        head = torch.fft.rfft(taps[..., :plan.head_taps], n=plan.head_size)
        batch, out_channels = self._like.shape[:2]
        response = _Response(self._head.kernel(head.unsqueeze(0)),
                             [stage.kernel(taps) for stage in self._stages],
                             weight.new_empty(batch, out_channels, 4 * plan.largest),
                             None if bias is None else bias.view(1, -1, 1))
        response.clear(response.ahead)
        return response

    def _set_responses(self, responses: list[_Response]) -> None:
        """The responses computed, oldest first (two during a crossfade)."""
        self._responses = responses
        for index, stage in enumerate(self._stages):
            stage.outputs = [(r.stages[index], r.ahead_rows) for r in responses]
            stage.spectra.kernels = [r.stages[index] for r in responses]

    def _drop_old(self) -> None:
        """End a crossfade: the new response alone."""
        if self._fade is not None:
            self._fade = None
            self._set_responses(self._responses[-1:])

    def reset(self) -> None:
        """Forget every sample seen (and a crossfade under way)."""
        self._drop_old()
        self._seen = 0  # samples streamed since the start
        self._base = -self._kept  # sample t is at t - base in the history
        self._history.zero_()
        for response in self._responses:
            response.clear(response.ahead)
        for stage in self._stages:
            stage.reset()

    def set_weight(self, weight: torch.Tensor, bias: torch.Tensor | None, *,
                   crossfade: int = 0, ramp: str = "linear") -> None:
        """See :class:`~autoconv.strategies.streaming.registry.StreamEngine` and the module
        docstring."""
        self._drop_old()
        new = self._response(weight, bias)
        for stage, kernel in zip(self._stages, new.stages, strict=True):
            stage.catch_up(kernel, new.ahead_rows, self._seen)
        old = self._responses[0]
        self._set_responses([old, new] if crossfade else [new])
        self._fade = Crossfade(old, crossfade, ramp, self._like) if crossfade else None

    def step(self, chunk: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The chunk's causal outputs (see :class:`~autoconv.strategies.streaming.registry.
        StreamEngine`)."""
        n, start = chunk.shape[-1], self._seen
        if out is None:
            out = self._like.new_empty(self._like.shape[0], self._like.shape[1], n)
        self._remember(chunk)
        seen = self._seen = start + n
        for stage in self._stages:
            if seen > stage.due:
                stage.advance(seen, self._rows, self._base)
        size = self._head_time.shape[-1]
        torch.fft.rfft(self._windows(seen - self._base - size, size),
                       out=self._head.spectrum)
        self._head.transform_input()
        fade = self._fade
        if fade is None:
            self._outputs(self._responses[0], start, out)
            return out
        old = fade.old_outputs(n)
        self._outputs(self._responses[0], start, old)
        self._outputs(self._responses[1], start, out)
        if fade.mix(old, out):
            self._drop_old()
        return out

    def _outputs(self, response: _Response, start: int, out: torch.Tensor) -> None:
        """``response``'s outputs of the samples from ``start`` (the head's and those
        ahead) into ``out``; those ahead start again at the bias."""
        n, size = out.shape[-1], self._head_time.shape[-1]
        torch.fft.irfft(self._head.multiply(response.head), n=size, out=self._head_time)
        head = self._tails(size - n, n)
        ring = response.ahead.shape[-1]
        at = start % ring
        if at + n <= ring:
            ahead = response.aheads(at, n)
            torch.add(head, ahead, out=out)
            response.clear(ahead)
            return
        split = ring - at
        for piece, ahead in ((slice(0, split), response.ahead[..., at:]),
                             (slice(split, n), response.ahead[..., :n - split])):
            torch.add(head[..., piece], ahead, out=out[..., piece])
            response.clear(ahead)

    def _remember(self, chunk: torch.Tensor) -> None:
        """Append the chunk to the history, moving it back first when it is full."""
        history, n = self._history, chunk.shape[-1]
        at, length = self._seen - self._base, history.shape[-1]
        if at + n > length:  # then at > 2 * kept: the kept samples do not overlap their place
            kept = self._kept
            history[..., :kept].copy_(history[..., at - kept:at])
            self._base += at - kept
            at = kept
        self._places(at, n).copy_(chunk)


class _Views:
    """Views ``tensor.narrow(dim, start, length)``, kept: a stream of full chunks asks for the
    same few again and again, and making one costs about as much as a small operation."""

    __slots__ = ("_dim", "_tensor", "_views")

    #: Views kept at most (chunks of random lengths ask for many).
    MOST = 4096

    def __init__(self, tensor: torch.Tensor, dim: int) -> None:
        self._tensor, self._dim, self._views = tensor, dim, {}

    def __call__(self, start: int, length: int) -> torch.Tensor:
        view = self._views.get((start, length))
        if view is None:
            if len(self._views) >= self.MOST:
                self._views.clear()
            view = self._views[start, length] = self._tensor.narrow(self._dim, start, length)
        return view


def build_nonuniform(weight: torch.Tensor, bias: torch.Tensor | None, *, dilation: int,
                     groups: int, batch: int, chunk_size: int, **schedule: int
                     ) -> NonUniformPartitioned:
    """The :data:`~autoconv.strategies.streaming.registry.Builder` of non-uniform
    partitioning; ``schedule``: its parameters (:data:`~.nonuniform_plan.PARAMS`, defaults:
    :func:`~.nonuniform_plan.schedule_of`)."""
    first, growth, largest = schedule_of(chunk_size, schedule)
    return NonUniformPartitioned(weight, bias, dilation=dilation, groups=groups, batch=batch,
                                 chunk_size=chunk_size, first=first, growth=growth,
                                 largest=largest)
