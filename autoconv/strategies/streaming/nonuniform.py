"""Non-uniformly partitioned overlap-save streaming (Gardner's scheme, multi-stage): the head
of the kernel transformed with each chunk, later taps in progressively larger partitions
with larger transforms, exact and without latency (the plan: :mod:`.nonuniform_plan`; when
each stage works: :mod:`.stage_slots`; the products: :mod:`.stage_spectra`).

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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autoconv.strategies.streaming.nonuniform_plan import NonUniformPlan, Stage, schedule_of
from autoconv.strategies.streaming.stage_slots import EMPTY, Slot, StageWork, schedule
from autoconv.strategies.streaming.stage_spectra import HeadProduct, StageSpectra


def lag_taps(weight: torch.Tensor, dilation: int) -> torch.Tensor:
    """The kernel by lag: ``h[..., l]`` multiplies the input ``l`` samples back (the weight
    flipped, with ``dilation - 1`` zeros between taps): ``(C_out, C_in / groups, L)``."""
    out_channels, in_per_group, kernel = weight.shape
    taps = weight.new_zeros(out_channels, in_per_group, dilation * (kernel - 1) + 1)
    taps[..., ::dilation] = weight.flip(-1)
    return taps


class _Stage:
    """One stage: its spectra, its transforms and its slots (see the module docstring).

    Attributes:
        due: the slot to run next is due once more than this many samples have come.
    """

    def __init__(self, stage: Stage, taps: torch.Tensor, slots: tuple[Slot, ...], *,
                 groups: int, batch: int, chunk: int) -> None:
        self.partition, self.size, self.chunk, self.slots = (stage.partition, stage.fft_size,
                                                             chunk, slots)
        out_channels, in_per_group, _ = taps.shape
        length = stage.count * stage.partition
        parts = F.pad(taps[..., stage.offset:stage.offset + length],
                      (0, max(0, stage.offset + length - taps.shape[-1])))
        parts = parts.reshape(out_channels, in_per_group, stage.count, stage.partition)
        kernel = torch.fft.rfft(parts.movedim(2, 0), n=self.size)
        most = max((s.mac[1] - s.mac[0] for s in slots if s.mac), default=1)
        self.spectra = StageSpectra(kernel, groups, batch, most)
        self._spectrum = kernel.new_empty(batch * in_per_group * groups, stage.bins)
        self._time = taps.new_empty(batch * out_channels, self.size)
        self._output = self.spectra.output.view(-1, stage.bins)
        self._tail = self._time[:, self.partition:]  # the outputs of the next block
        #: the first slot with work at or after each slot
        self._next_work = [len(slots)] * (len(slots) + 1)
        for index in range(len(slots) - 1, -1, -1):
            self._next_work[index] = (index if slots[index] is not EMPTY
                                      else self._next_work[index + 1])
        self.reset()

    def reset(self) -> None:
        self.block, self.done = 0, 0  # the block whose slots run, its slots done
        self.spectra.reset()
        self._skip()

    def _skip(self) -> None:
        """Pass the slots without work, then set :attr:`due`."""
        index = self._next_work[self.done]
        if index == len(self.slots):  # none left in this block: the next one's first
            self.block, index = self.block + 1, self._next_work[0]
        self.done = index
        self.due = self.block * self.partition + index * self.chunk

    def advance(self, seen: int, history: torch.Tensor, base: int, ahead: torch.Tensor
                ) -> None:
        """Run the slots due once ``seen`` samples have come.

        Args:
            history: the input history ``(B * C_in, length)``; sample ``t`` at ``t - base``.
            ahead: the outputs ahead ``(B * C_out, ring)``, sample ``t`` at ``t % ring``.
        """
        while seen > self.due:
            self._run(self.slots[self.done], self.block * self.partition, history, base,
                      ahead)
            self.done += 1
            self._skip()

    def _run(self, slot: Slot, start: int, history: torch.Tensor, base: int,
             ahead: torch.Tensor) -> None:
        if slot.fft:
            window = history.narrow(1, start - base - self.size, self.size)
            torch.fft.rfft(window, out=self._spectrum)
            self.spectra.push(self._spectrum)
        if slot.mac:
            self.spectra.accumulate(*slot.mac)
        if slot.ifft:
            self.spectra.finish()
            torch.fft.irfft(self._output, n=self.size, out=self._time)
            at = (start + self.partition) % ahead.shape[-1]
            ahead.narrow(1, at, self.partition).add_(self._tail)


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
        taps = lag_taps(weight, dilation)
        plan = self.plan = NonUniformPlan.of(taps.shape[-1], chunk_size, first, growth,
                                             largest)
        size = plan.head_size
        head = torch.fft.rfft(taps[..., :plan.head_taps], n=size)
        self._head = HeadProduct(head.unsqueeze(0), groups, batch)
        rows_in, rows_out = batch * in_per_group * groups, batch * out_channels
        self._head_time = taps.new_empty(batch, out_channels, size)
        pairs = 8.0 * batch * out_channels * in_per_group
        works = [StageWork(stage.partition // chunk_size, stage.fft_size, rows_in, rows_out,
                           stage.count, pairs * stage.bins) for stage in plan.stages]
        self._stages = [_Stage(stage, taps, slots, groups=groups, batch=batch,
                               chunk=chunk_size)
                        for stage, slots in zip(plan.stages, schedule(works), strict=True)]
        #: history kept when the buffer moves back: every window a slot may still read
        self._kept = max(3 * plan.largest + chunk_size, size)
        self._history = taps.new_zeros(batch, in_per_group * groups,
                                       2 * self._kept + chunk_size)
        self._rows = self._history.view(rows_in, -1)
        self._ahead = taps.new_zeros(batch, out_channels, 4 * plan.largest)
        self._ahead_rows = self._ahead.view(rows_out, -1)
        self._bias = None if bias is None else bias.view(1, -1, 1)
        self._places, self._windows = _Views(self._history, 2), _Views(self._rows, 1)
        self._aheads, self._tails = _Views(self._ahead, 2), _Views(self._head_time, 2)
        self.reset()

    def reset(self) -> None:
        """Forget every sample seen."""
        self._seen = 0  # samples streamed since the start
        self._base = -self._kept  # sample t is at t - base in the history
        self._history.zero_()
        self._clear(self._ahead)
        for stage in self._stages:
            stage.reset()

    def _clear(self, ahead: torch.Tensor) -> None:
        """Outputs ahead start at the bias."""
        if self._bias is None:
            ahead.zero_()
        else:
            ahead.copy_(self._bias)

    def step(self, chunk: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The chunk's causal outputs (see :class:`~autoconv.strategies.streaming.registry.
        StreamEngine`)."""
        n, start = chunk.shape[-1], self._seen
        if out is None:
            out = self._head_time.new_empty(self._head_time.shape[0],
                                            self._head_time.shape[1], n)
        self._remember(chunk)
        seen = self._seen = start + n
        for stage in self._stages:
            if seen > stage.due:
                stage.advance(seen, self._rows, self._base, self._ahead_rows)
        size = self._head_time.shape[-1]
        torch.fft.rfft(self._windows(seen - self._base - size, size),
                       out=self._head.spectrum)
        torch.fft.irfft(self._head.multiply(), n=size, out=self._head_time)
        head = self._tails(size - n, n)
        ring = self._ahead.shape[-1]
        at = start % ring
        if at + n <= ring:
            ahead = self._aheads(at, n)
            torch.add(head, ahead, out=out)
            self._clear(ahead)
            return out
        split = ring - at
        for piece, ahead in ((slice(0, split), self._ahead[..., at:]),
                             (slice(split, n), self._ahead[..., :n - split])):
            torch.add(head[..., piece], ahead, out=out[..., piece])
            self._clear(ahead)
        return out

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
