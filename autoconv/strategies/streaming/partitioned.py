"""Uniformly partitioned overlap-save streaming (the plan: :mod:`.partition_plan`; the delay
line of past block spectra: :mod:`.delay_line`).

Per piece of input (a chunk, or the part of a chunk that falls in one block), into buffers
allocated once:

1. the piece joins the block's time buffer (the samples of the block still to come are
   zeros), which is transformed;
2. its spectrum times the first partition's (the head), plus the tail spectrum of the block
   (every later partition times the spectrum of an earlier block, summed before the block
   began), is transformed back: the piece's outputs, exact, with no latency;
3. a share of the next block's tail is accumulated, in proportion to the samples of the block
   seen, so that the products of the later partitions are spread evenly over its chunks;
4. when the block is complete its spectrum enters the delay line, partition 1 times it
   completes the next tail, and the time buffer moves on by one block.

With ``static_state`` (the default on CUDA) nothing depends on Python-side state from one
full aligned chunk to the next (the delay line shifts by copies), so that one chunk captured
in a CUDA graph replays the stream. No tensor is allocated per chunk by this code (torch's
FFT may use a scratch buffer of its own).

A new weight (``set_weight``) keeps the state, which is the input's alone (the block's time
buffer, the delay line's spectra of past blocks): its spectra are computed, and its tail and
share of the next one from the delay line's spectra, as if it had been there from the start.
During a crossfade each piece is transformed once and multiplied and transformed back for
both weights (:class:`~.delay_line.Taps`: each response's tails).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autoconv.strategies.streaming.crossfade import Crossfade
from autoconv.strategies.streaming.delay_line import (
    BatchedDelayLine,
    ElementwiseDelayLine,
    Taps,
)
from autoconv.strategies.streaming.partition_plan import PartitionPlan

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def kernel_spectra(weight: torch.Tensor, dilation: int, plan: PartitionPlan) -> torch.Tensor:
    """Spectra of the partitions of the flipped, dilated kernel: ``(Q, C_out, C_in/g, bins)``."""
    out_channels, in_per_group, _ = weight.shape
    taps = weight.new_zeros(out_channels, in_per_group, plan.parts * plan.partition)
    taps[..., : plan.span : dilation] = weight.flip(-1)
    parts = taps.view(out_channels, in_per_group, plan.parts, plan.partition)
    parts = F.pad(parts.movedim(2, 0), (0, plan.fft_size - plan.partition))
    return torch.fft.rfft(parts, n=plan.fft_size)


class _Response:
    """What one weight adds to the state: the head's spectrum (in the engine's layout), the
    bias ``(C_out, 1)`` and the delay line's tails."""

    __slots__ = ("bias", "head", "taps")

    def __init__(self, head: torch.Tensor, bias: torch.Tensor | None, taps: Taps | None
                 ) -> None:
        self.head, self.bias, self.taps = head, bias, taps


class UniformPartitioned:
    """The partitioned overlap-save engine (see the module docstring).

    Args:
        weight: ``(C_out, C_in / groups, K)``, detached, float32 or float64.
        bias: ``(C_out,)`` or None.
        dilation, groups: as for ``F.conv1d``.
        batch: rows per chunk.
        chunk_size: the longest chunk.
        partition: samples per partition (a multiple of ``chunk_size``).
        static_state: shift and copy state instead of moving pointers (CUDA graphs);
            default: on CUDA.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, dilation: int,
                 groups: int, batch: int, chunk_size: int, partition: int,
                 static_state: bool | None = None) -> None:
        out_channels, in_per_group, kernel = weight.shape
        self.dilation = dilation
        plan = self.plan = PartitionPlan.of(dilation * (kernel - 1) + 1, partition)
        static = weight.device.type == "cuda" if static_state is None else static_state
        bins, size, per_group = plan.bins, plan.fft_size, out_channels // groups
        self._shape = (batch, groups, in_per_group, per_group, bins)
        real = {"dtype": weight.dtype, "device": weight.device}
        cplx = {"dtype": _COMPLEX[weight.dtype], "device": weight.device}
        spectra = kernel_spectra(weight, dilation, plan)
        #: the head: elementwise when each output reads one input channel
        self._elementwise = in_per_group == 1
        if not self._elementwise:
            self._spectrum_f = torch.empty(groups, bins, batch, in_per_group, **cplx)
            self._output_f = torch.empty(groups, bins, batch, per_group, **cplx)
        self._time = torch.zeros(batch, in_per_group * groups, size, **real)
        self._spectrum = torch.empty(batch, in_per_group * groups, bins, **cplx)
        self._output_spectrum = torch.empty(batch, out_channels, bins, **cplx)
        self._output = torch.empty(batch, out_channels, size, **real)
        self._like = torch.empty(batch, out_channels, chunk_size, **real)
        kept = size - partition
        self._time_scratch = (torch.empty(batch, in_per_group * groups, kept, **real)
                              if kept > partition else None)
        self._delay = None
        if plan.parts > 1:
            line = ElementwiseDelayLine if self._elementwise else BatchedDelayLine
            self._delay = line(spectra[1:], groups, batch, static)
        #: the responses computed, oldest first: two during a crossfade
        self._responses = [_Response(self._head_of(spectra[0]), _column(bias),
                                     self._delay.responses[0] if self._delay else None)]
        self._fade: Crossfade | None = None
        #: tail partitions accumulated before their block ends (partition 1 is added then)
        self._early = max(plan.parts - 2, 0)
        self.reset()

    def _head_of(self, spectrum: torch.Tensor) -> torch.Tensor:
        """The first partition's spectrum ``(C_out, C_in / groups, bins)`` in the layout of
        :meth:`_multiply_head`."""
        _, groups, in_per_group, per_group, bins = self._shape
        if self._elementwise:
            return spectrum.reshape(groups, per_group, bins)
        return (spectrum.view(groups, per_group, in_per_group, bins).permute(0, 3, 2, 1)
                .reshape(groups * bins, in_per_group, per_group))

    def reset(self) -> None:
        """Forget every sample seen (and a crossfade under way)."""
        self._drop_old()
        self._offset = 0  # samples of the current block seen so far
        self._accumulated = 0  # entries of the next tail's early share accumulated so far
        self._time.zero_()
        if self._delay is not None:
            self._delay.reset()

    def set_weight(self, weight: torch.Tensor, bias: torch.Tensor | None, *,
                   crossfade: int = 0, ramp: str = "linear") -> None:
        """See :class:`~autoconv.strategies.streaming.registry.StreamEngine` and the module
        docstring."""
        self._drop_old()
        spectra = kernel_spectra(weight, self.dilation, self.plan)
        taps = (None if self._delay is None
                else self._delay.taps(spectra[1:], self._accumulated))
        new = _Response(self._head_of(spectra[0]), _column(bias), taps)
        old = self._responses[0]
        self._set_responses([old, new] if crossfade else [new])
        self._fade = Crossfade(old, crossfade, ramp, self._like) if crossfade else None

    def _set_responses(self, responses: list[_Response]) -> None:
        self._responses = responses
        if self._delay is not None:
            self._delay.responses = [r.taps for r in responses]  # type: ignore[misc]

    def _drop_old(self) -> None:
        """End a crossfade: the new response alone."""
        if self._fade is not None:
            self._fade = None
            self._set_responses(self._responses[-1:])

    def step(self, chunk: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The chunk's causal outputs (see :class:`~autoconv.strategies.streaming.registry.
        StreamEngine`)."""
        n = chunk.shape[-1]
        if out is None:
            out = self._output.new_empty(self._output.shape[0], self._output.shape[1], n)
        fade = self._fade
        old = None if fade is None else fade.old_outputs(n)
        done, partition = 0, self.plan.partition
        while done < n:
            take = min(n - done, partition - self._offset)
            pieces = slice(done, done + take)
            self._piece(chunk[..., pieces], out[..., pieces],
                        None if old is None else old[..., pieces])
            done += take
        if fade is not None and fade.mix(old, out):  # type: ignore[arg-type]
            self._drop_old()
        return out

    def _piece(self, piece: torch.Tensor, out: torch.Tensor, old: torch.Tensor | None
               ) -> None:
        """The outputs of ``piece``, samples of one block (the old response's into ``old``
        during a crossfade)."""
        plan, n = self.plan, piece.shape[-1]
        start = plan.fft_size - plan.partition + self._offset
        self._time[..., start:start + n].copy_(piece)
        torch.fft.rfft(self._time, out=self._spectrum)
        responses = self._responses
        if not self._elementwise:
            batch, groups, in_per_group, _, bins = self._shape
            self._spectrum_f.copy_(self._spectrum.view(batch, groups, in_per_group, bins)
                                   .permute(1, 3, 0, 2))
        for response in responses:
            self._multiply_head(response.head)
            if response.taps is not None:
                self._output_spectrum.add_(response.taps.tail)
            torch.fft.irfft(self._output_spectrum, n=plan.fft_size, out=self._output)
            outputs = self._output[..., start:start + n]
            target = out if response is responses[-1] else old
            if response.bias is None:
                target.copy_(outputs)  # type: ignore[union-attr]
            else:
                torch.add(outputs, response.bias, out=target)
        self._offset += n
        if self._delay is not None:
            target = self._early * self._offset // plan.partition
            self._delay.accumulate(self._accumulated, target)
            self._accumulated = max(self._accumulated, target)
        if self._offset == plan.partition:
            self._end_block()

    def _multiply_head(self, head: torch.Tensor) -> None:
        """The output spectrum: the piece's spectrum (laid out frequency-major in
        ``_spectrum_f`` when not elementwise) times ``head``."""
        batch, groups, in_per_group, per_group, bins = self._shape
        if self._elementwise:
            torch.mul(self._spectrum.view(batch, groups, 1, bins), head,
                      out=self._output_spectrum.view(batch, groups, per_group, bins))
            return
        torch.bmm(self._spectrum_f.view(groups * bins, batch, in_per_group), head,
                  out=self._output_f.view(groups * bins, batch, per_group))
        self._output_spectrum.view(batch, groups, per_group, bins).copy_(
            self._output_f.permute(2, 0, 3, 1))

    def _end_block(self) -> None:
        plan = self.plan
        if self._delay is not None:
            self._delay.end_block(self._spectrum, accumulated=self._accumulated > 0)
            self._accumulated = 0
        kept = plan.fft_size - plan.partition
        moved = self._time[..., plan.partition:]
        if self._time_scratch is not None:  # the kept samples overlap their new place
            moved = self._time_scratch.copy_(moved)
        self._time[..., :kept].copy_(moved)
        self._time[..., kept:].zero_()
        self._offset = 0


def _column(bias: torch.Tensor | None) -> torch.Tensor | None:
    return None if bias is None else bias.view(-1, 1)


def build_partitioned(weight: torch.Tensor, bias: torch.Tensor | None, *, dilation: int,
                      groups: int, batch: int, chunk_size: int,
                      partition: int | None = None) -> UniformPartitioned:
    """The :data:`~autoconv.strategies.streaming.registry.Builder` of partitioned
    overlap-save (``partition`` defaults to the chunk size)."""
    return UniformPartitioned(weight, bias, dilation=dilation, groups=groups, batch=batch,
                              chunk_size=chunk_size, partition=partition or chunk_size)
