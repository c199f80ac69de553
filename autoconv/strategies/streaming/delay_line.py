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


class ElementwiseDelayLine:
    """The delay line when each output reads one input channel (see the module docstring).

    Args:
        spectra: the kernel's partitions 1.. ``(Q - 1, C_out, 1, bins)``.
        groups: ``C_in`` (one input channel per group).
        batch: rows per chunk.
        static: shift by copies (CUDA graphs).
    """

    def __init__(self, spectra: torch.Tensor, groups: int, batch: int, static: bool) -> None:
        parts, out_channels, _, bins = spectra.shape
        per_group = out_channels // groups
        #: partition q + 1, as (Q - 1, 1, groups, outputs per group, bins)
        self._spectra = spectra.reshape(parts, 1, groups, per_group, bins).contiguous()
        slots = parts * (1 if static else 2)
        make = {"dtype": spectra.dtype, "device": spectra.device}
        self._ring = _Ring(torch.zeros(slots, batch, groups, 1, bins, **make), 0, parts, static)
        self._products = torch.empty(max(parts - 1, 1), batch, groups, per_group, bins, **make)
        self._share = torch.empty(batch, groups, per_group, bins, **make)
        self._next = torch.zeros(batch, groups, per_group, bins, **make)
        #: the current block's tail, (B, C_out, bins)
        self.tail = torch.zeros(batch, out_channels, bins, **make)
        self._groups = groups

    def accumulate(self, first: int, end: int) -> None:
        """Add partitions ``first + 2 .. end + 2`` times the spectra of ages ``first..end``
        to the next tail (``first == 0`` starts it)."""
        if end <= first:
            return
        products = self._products[:end - first]
        torch.mul(self._ring.window(first, end), self._spectra[first + 1:end + 1],
                  out=products)
        if first == 0:
            torch.sum(products, 0, out=self._next)
        else:
            torch.sum(products, 0, out=self._share)
            self._next.add_(self._share)

    def end_block(self, spectrum: torch.Tensor, accumulated: bool) -> None:
        """The block whose spectrum is ``spectrum`` ``(B, C_in, bins)`` ended: it enters the
        ring, partition 1 times it completes the next tail, which becomes the tail.

        Args:
            accumulated: whether :meth:`accumulate` started the next tail in this block.
        """
        batch, groups, _, bins = self._next.shape
        self._ring.push(spectrum.view(batch, groups, 1, bins))
        late = self._products[0]
        target = late if accumulated else self._next
        torch.mul(self._ring.window(0, 1)[0], self._spectra[0], out=target)
        if accumulated:
            self._next.add_(late)
        self.tail.view(self._next.shape).copy_(self._next)

    def reset(self) -> None:
        self._ring.reset()
        self._next.zero_()
        self.tail.zero_()


class BatchedDelayLine:
    """The delay line of grouped and dense layers (see the module docstring).

    Args:
        spectra: the kernel's partitions 1.. ``(Q - 1, C_out, C_in / groups, bins)``.
        groups, batch, static: as for :class:`ElementwiseDelayLine`.
    """

    def __init__(self, spectra: torch.Tensor, groups: int, batch: int, static: bool) -> None:
        parts, out_channels, in_per_group, bins = spectra.shape
        per_group = out_channels // groups
        grouped = spectra.view(parts, groups, per_group, in_per_group, bins)
        #: (groups * bins, (Q - 1) * inputs per group, outputs per group)
        self._spectra = (grouped.permute(1, 4, 0, 3, 2).contiguous()
                         .view(groups * bins, parts * in_per_group, per_group))
        slots = parts * (1 if static else 2)
        make = {"dtype": spectra.dtype, "device": spectra.device}
        self._ring = _Ring(torch.zeros(groups, bins, batch, slots, in_per_group, **make), 3,
                           parts, static)
        self._next = torch.zeros(groups, bins, batch, per_group, **make)
        self.tail = torch.zeros(batch, out_channels, bins, **make)
        self._shape = (batch, groups, in_per_group, per_group, bins)

    def _product(self, first: int, end: int, spectra: torch.Tensor, start: bool) -> None:
        batch, groups, in_per_group, per_group, bins = self._shape
        window = self._ring.window(first, end).reshape(groups * bins, batch,
                                                       (end - first) * in_per_group)
        target = self._next.view(groups * bins, batch, per_group)
        if start:
            torch.bmm(window, spectra, out=target)
        else:
            target.baddbmm_(window, spectra)

    def accumulate(self, first: int, end: int) -> None:
        """As :meth:`ElementwiseDelayLine.accumulate`."""
        if end > first:
            in_per_group = self._shape[2]
            self._product(first, end, self._spectra[:, (first + 1) * in_per_group:
                                                    (end + 1) * in_per_group], first == 0)

    def end_block(self, spectrum: torch.Tensor, accumulated: bool) -> None:
        """As :meth:`ElementwiseDelayLine.end_block`."""
        batch, groups, in_per_group, per_group, bins = self._shape
        self._ring.push(spectrum.view(batch, groups, in_per_group, bins).permute(1, 3, 0, 2))
        self._product(0, 1, self._spectra[:, :in_per_group], not accumulated)
        self.tail.view(batch, groups, per_group, bins).copy_(self._next.permute(2, 0, 3, 1))

    def reset(self) -> None:
        self._ring.reset()
        self._next.zero_()
        self.tail.zero_()
