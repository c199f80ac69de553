"""The frequency-domain delay line of partitioned overlap-save: the spectra of the last
blocks, and the *tail* of the next block (every partition but the first, times the spectrum
of the block it applies to), accumulated a share at a time (:mod:`.partitioned`).

Two layouts, one interface:

- :class:`ElementwiseDelayLine`, when each output channel reads one input channel (depthwise,
  one channel, a multiplier per channel): block-major spectra, so that a share of the tail
  is one broadcast product and one sum over blocks;
- :class:`BatchedDelayLine`, for the rest: frequency-major spectra, so that a share of the
  tail is one batched matrix product per (group, bin) over (blocks x input channels).

Both keep the spectra in a ring (a pointer moves, nothing is copied), doubled so that the
spectra of the last blocks are one strided view, newest first; with ``static`` the ring
shifts by copies instead and no Python-side state changes from one block to the next (CUDA
graphs). Nothing here allocates after construction.

What depends on the weight (the partitions' spectra, the next tail being accumulated, the
tail) is a *response* (:class:`Taps`); the ring is the input's. A delay line computes the
tails of each of its :attr:`responses` from the same ring: two while a stream crossfades from
one weight to another (:meth:`taps` makes a new weight's response as if it had been there
from the start).
"""

from __future__ import annotations

import torch


class _Ring:
    """Where the spectra of the last ``size`` blocks are, along one dimension of a buffer."""

    def __init__(self, buffer: torch.Tensor, dim: int, size: int, static: bool) -> None:
        self.buffer, self.dim, self.size, self.static = buffer, dim, size, static
        self.head = 0  # the slot of the newest spectrum
        self._scratch = (buffer.narrow(dim, 0, size - 1).clone()
                         if static and size > 1 else None)

    def window(self, first: int, end: int) -> torch.Tensor:
        """The spectra of ages ``first..end`` (0 the newest), newest first."""
        return self.buffer.narrow(self.dim, self.head + first, end - first)

    def push(self, spectrum: torch.Tensor) -> None:
        """Make ``spectrum`` (the buffer's shape without ``dim``) the newest entry."""
        buffer, dim, size = self.buffer, self.dim, self.size
        if self.static:
            if self._scratch is not None:
                self._scratch.copy_(buffer.narrow(dim, 0, size - 1))
                buffer.narrow(dim, 1, size - 1).copy_(self._scratch)
            buffer.select(dim, 0).copy_(spectrum)
            return
        self.head = (self.head - 1) % size
        buffer.select(dim, self.head).copy_(spectrum)
        buffer.select(dim, self.head + size).copy_(spectrum)

    def reset(self) -> None:
        self.head = 0
        self.buffer.zero_()


class Taps:
    """One response of a delay line: its partitions' spectra (in the line's layout), the
    next tail being accumulated and the current block's tail ``(B, C_out, bins)``."""

    __slots__ = ("next", "spectra", "tail")

    def __init__(self, spectra: torch.Tensor, next_: torch.Tensor, tail: torch.Tensor) -> None:
        self.spectra, self.next, self.tail = spectra, next_, tail


class ElementwiseDelayLine:
    """The delay line when each output reads one input channel (see the module docstring).

    Args:
        spectra: the kernel's partitions 1.. ``(Q - 1, C_out, 1, bins)``.
        groups: ``C_in`` (one input channel per group).
        batch: rows per chunk.
        static: shift by copies (CUDA graphs).

    Attributes:
        responses: the responses whose tails it computes (the stream's, oldest first).
    """

    def __init__(self, spectra: torch.Tensor, groups: int, batch: int, static: bool) -> None:
        parts, out_channels, _, bins = spectra.shape
        self._shape = (batch, groups, out_channels // groups, bins)
        slots = parts * (1 if static else 2)
        make = {"dtype": spectra.dtype, "device": spectra.device}
        self._ring = _Ring(torch.zeros(slots, batch, groups, 1, bins, **make), 0, parts, static)
        self._products = torch.empty(max(parts - 1, 1), *self._shape, **make)
        self._share = torch.empty(self._shape, **make)
        self.responses = [self._taps(spectra)]

    def _taps(self, spectra: torch.Tensor) -> Taps:
        """A response of ``spectra`` with its tails at zero."""
        parts, out_channels, _, bins = spectra.shape
        batch, groups, per_group, _ = self._shape
        return Taps(spectra.reshape(parts, 1, groups, per_group, bins).contiguous(),
                    spectra.new_zeros(self._shape), spectra.new_zeros(batch, out_channels, bins))

    def taps(self, spectra: torch.Tensor, accumulated: int) -> Taps:
        """The response of ``spectra`` (as for the constructor) as if it had been there from
        the start: the tail of the current block, and the next one's first ``accumulated``
        entries."""
        taps = self._taps(spectra)
        parts = taps.spectra.shape[0]
        full = (self._ring.window(0, parts) * taps.spectra).sum(0)
        taps.tail.view(self._shape).copy_(full)
        if accumulated:
            taps.next.copy_((self._ring.window(0, accumulated)
                             * taps.spectra[1:accumulated + 1]).sum(0))
        return taps

    def accumulate(self, first: int, end: int) -> None:
        """Add partitions ``first + 2 .. end + 2`` times the spectra of ages ``first..end``
        to each response's next tail (``first == 0`` starts it)."""
        if end <= first:
            return
        products, window = self._products[:end - first], self._ring.window(first, end)
        for taps in self.responses:
            torch.mul(window, taps.spectra[first + 1:end + 1], out=products)
            if first == 0:
                torch.sum(products, 0, out=taps.next)
            else:
                torch.sum(products, 0, out=self._share)
                taps.next.add_(self._share)

    def end_block(self, spectrum: torch.Tensor, accumulated: bool) -> None:
        """The block whose spectrum is ``spectrum`` ``(B, C_in, bins)`` ended: it enters the
        ring, partition 1 times it completes each next tail, which becomes the tail.

        Args:
            accumulated: whether :meth:`accumulate` started the next tails in this block.
        """
        batch, groups, _, bins = self._shape
        self._ring.push(spectrum.view(batch, groups, 1, bins))
        newest, late = self._ring.window(0, 1)[0], self._products[0]
        for taps in self.responses:
            target = late if accumulated else taps.next
            torch.mul(newest, taps.spectra[0], out=target)
            if accumulated:
                taps.next.add_(late)
            taps.tail.view(self._shape).copy_(taps.next)

    def reset(self) -> None:
        self._ring.reset()
        for taps in self.responses:
            taps.next.zero_()
            taps.tail.zero_()


class BatchedDelayLine:
    """The delay line of grouped and dense layers (see the module docstring).

    Args:
        spectra: the kernel's partitions 1.. ``(Q - 1, C_out, C_in / groups, bins)``.
        groups, batch, static: as for :class:`ElementwiseDelayLine`.

    Attributes:
        responses: as for :class:`ElementwiseDelayLine`.
    """

    def __init__(self, spectra: torch.Tensor, groups: int, batch: int, static: bool) -> None:
        parts, out_channels, in_per_group, bins = spectra.shape
        per_group = out_channels // groups
        slots = parts * (1 if static else 2)
        make = {"dtype": spectra.dtype, "device": spectra.device}
        self._ring = _Ring(torch.zeros(groups, bins, batch, slots, in_per_group, **make), 3,
                           parts, static)
        self._shape = (batch, groups, in_per_group, per_group, bins)
        self.responses = [self._taps(spectra)]

    def _taps(self, spectra: torch.Tensor) -> Taps:
        parts, out_channels, in_per_group, bins = spectra.shape
        batch, groups, _, per_group, _ = self._shape
        grouped = spectra.view(parts, groups, per_group, in_per_group, bins)
        #: (groups * bins, (Q - 1) * inputs per group, outputs per group)
        frequency_major = (grouped.permute(1, 4, 0, 3, 2).contiguous()
                           .view(groups * bins, parts * in_per_group, per_group))
        return Taps(frequency_major, spectra.new_zeros(groups, bins, batch, per_group),
                    spectra.new_zeros(batch, out_channels, bins))

    def taps(self, spectra: torch.Tensor, accumulated: int) -> Taps:
        """As :meth:`ElementwiseDelayLine.taps`."""
        taps = self._taps(spectra)
        parts, in_per_group = spectra.shape[0], self._shape[2]
        full = taps.next.clone()
        self._product(0, parts, taps.spectra, full, start=True)
        self._lay_out(full, taps.tail)
        if accumulated:
            self._product(0, accumulated,
                          taps.spectra[:, in_per_group:(accumulated + 1) * in_per_group],
                          taps.next, start=True)
        return taps

    def _product(self, first: int, end: int, spectra: torch.Tensor, target: torch.Tensor,
                 start: bool) -> None:
        batch, groups, in_per_group, per_group, bins = self._shape
        window = self._ring.window(first, end).reshape(groups * bins, batch,
                                                       (end - first) * in_per_group)
        target = target.view(groups * bins, batch, per_group)
        if start:
            torch.bmm(window, spectra, out=target)
        else:
            target.baddbmm_(window, spectra)

    def _lay_out(self, frequency_major: torch.Tensor, tail: torch.Tensor) -> None:
        batch, groups, _, per_group, bins = self._shape
        tail.view(batch, groups, per_group, bins).copy_(frequency_major.permute(2, 0, 3, 1))

    def accumulate(self, first: int, end: int) -> None:
        """As :meth:`ElementwiseDelayLine.accumulate`."""
        if end > first:
            in_per_group = self._shape[2]
            for taps in self.responses:
                self._product(first, end, taps.spectra[:, (first + 1) * in_per_group:
                                                       (end + 1) * in_per_group],
                              taps.next, first == 0)

    def end_block(self, spectrum: torch.Tensor, accumulated: bool) -> None:
        """As :meth:`ElementwiseDelayLine.end_block`."""
        batch, groups, in_per_group, _, bins = self._shape
        self._ring.push(spectrum.view(batch, groups, in_per_group, bins).permute(1, 3, 0, 2))
        for taps in self.responses:
            self._product(0, 1, taps.spectra[:, :in_per_group], taps.next, not accumulated)
            self._lay_out(taps.next, taps.tail)

    def reset(self) -> None:
        self._ring.reset()
        for taps in self.responses:
            taps.next.zero_()
            taps.tail.zero_()
