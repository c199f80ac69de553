"""One stage of a non-uniformly partitioned stream (:mod:`.nonuniform`): its slots run as the
samples come (:mod:`.stage_slots`), its transforms, its products (:mod:`.stage_spectra`) added
to each response's outputs ahead, and what a new weight's response catches up on
(:meth:`StageEngine.catch_up`).

A stage of partition ``P`` works, during block ``b`` (the samples ``(bP, (b+1)P]``), on the
outputs of block ``b + 1`` (samples ``[(b+1)P, (b+2)P)``): the transform of the window that
ended with block ``b`` (the ``2P`` samples before ``bP``), its products with the partitions,
the inverse transform. A new weight needs, for the samples still to come, the blocks already
transformed back (at most two: their windows are the newest spectra, the ring keeps one more
than the partitions for it) and the sum under way, all from the stored spectra.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autoconv.strategies.streaming.nonuniform_plan import Stage
from autoconv.strategies.streaming.stage_slots import EMPTY, Slot
from autoconv.strategies.streaming.stage_spectra import StageKernel, StageSpectra


def complex_of(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype of a real one's spectra."""
    return torch.complex64 if dtype == torch.float32 else torch.complex128


class StageEngine:
    """One stage: its spectra, its transforms and its slots (see :mod:`.nonuniform`).

    Args:
        stage: its partitions (:class:`~.nonuniform_plan.Stage`).
        like: the weight ``(C_out, C_in / groups, K)``: channels, dtype and device.
        slots: the work of each chunk of its block (:func:`~.stage_slots.schedule`).
        groups, batch, chunk: the layer's groups, rows per chunk, the chunk size.

    Attributes:
        due: the slot to run next is due once more than this many samples have come.
        outputs: each response's kernel and outputs ahead ``(B * C_out, ring)`` (set by the
            engine).
    """

    def __init__(self, stage: Stage, like: torch.Tensor, slots: tuple[Slot, ...], *,
                 groups: int, batch: int, chunk: int) -> None:
        self.stage, self.partition, self.size, self.chunk, self.slots = (
            stage, stage.partition, stage.fft_size, chunk, slots)
        out_channels, in_per_group, _ = like.shape
        most = max((s.mac[1] - s.mac[0] for s in slots if s.mac), default=1)
        layout = like.new_empty(0, out_channels, in_per_group, stage.bins,
                                dtype=complex_of(like.dtype))
        self.spectra = StageSpectra(layout, stage.count, groups, batch, most)
        self._spectrum = layout.new_empty(batch * in_per_group * groups, stage.bins)
        self._time = like.new_empty(batch * out_channels, self.size)
        self._tail = self._time[:, self.partition:]  # the outputs of the next block
        self.outputs: list[tuple[StageKernel, torch.Tensor]] = []
        #: the first slot with work at or after each slot
        self._next_work = [len(slots)] * (len(slots) + 1)
        for index in range(len(slots) - 1, -1, -1):
            self._next_work[index] = (index if slots[index] is not EMPTY
                                      else self._next_work[index + 1])
        self.reset()

    def kernel(self, taps: torch.Tensor) -> StageKernel:
        """This stage's partitions of the kernel by lag ``taps``, transformed."""
        stage = self.stage
        out_channels, in_per_group, _ = taps.shape
        length = stage.count * stage.partition
        parts = F.pad(taps[..., stage.offset:stage.offset + length],
                      (0, max(0, stage.offset + length - taps.shape[-1])))
        parts = parts.reshape(out_channels, in_per_group, stage.count, stage.partition)
        return self.spectra.kernel(torch.fft.rfft(parts.movedim(2, 0), n=self.size))

    def reset(self) -> None:
        self.block, self.done = 0, 0  # the block whose slots run, its slots done
        #: the last block transformed, the last one transformed back, the partitions of the
        #: block under way accumulated
        self.pushed, self.transformed, self.accumulated = -1, -1, 0
        self.spectra.reset()
        self._skip()

    def _skip(self) -> None:
        """Pass the slots without work, then set :attr:`due`."""
        index = self._next_work[self.done]
        if index == len(self.slots):  # none left in this block: the next one's first
            self.block, index = self.block + 1, self._next_work[0]
        self.done = index
        self.due = self.block * self.partition + index * self.chunk

    def advance(self, seen: int, history: torch.Tensor, base: int) -> None:
        """Run the slots due once ``seen`` samples have come.

        Args:
            history: the input history ``(B * C_in, length)``; sample ``t`` at ``t - base``.
        """
        while seen > self.due:
            self._run(self.slots[self.done], self.block * self.partition, history, base)
            self.done += 1
            self._skip()

    def _run(self, slot: Slot, start: int, history: torch.Tensor, base: int) -> None:
        if slot.fft:
            window = history.narrow(1, start - base - self.size, self.size)
            torch.fft.rfft(window, out=self._spectrum)
            self.spectra.push(self._spectrum)
            self.pushed, self.accumulated = self.block, 0
        if slot.mac:
            self.spectra.accumulate(*slot.mac)
            self.accumulated = slot.mac[1]
        if slot.ifft:
            for kernel, ahead in self.outputs:
                torch.fft.irfft(self.spectra.finish(kernel).view(self._time.shape[0], -1),
                                n=self.size, out=self._time)
                at = (start + self.partition) % ahead.shape[-1]
                ahead.narrow(1, at, self.partition).add_(self._tail)
            self.transformed = self.block

    def catch_up(self, kernel: StageKernel, ahead: torch.Tensor, seen: int) -> None:
        """Add to ``ahead`` (a new response's outputs ahead, ring as for :meth:`_run`) what
        ``kernel``'s stage would have put there by now for the samples from ``seen`` on,
        and make its sum that of the block under way."""
        partition = self.partition
        for block in range(max(seen // partition - 1, 0), self.transformed + 1):
            spectrum = self.spectra.block_sum(kernel, self.pushed - block)
            torch.fft.irfft(spectrum.view(self._time.shape[0], -1), n=self.size,
                            out=self._time)
            first = (block + 1) * partition  # the first sample of its outputs
            skip = max(seen - first, 0)  # those already given
            if skip < partition:
                at = (first + skip) % ahead.shape[-1]
                ahead.narrow(1, at, partition - skip).add_(self._tail[:, skip:])
        if self.pushed > self.transformed:
            self.spectra.resume(kernel, self.accumulated)
