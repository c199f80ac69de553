"""The frequency-domain products of a non-uniformly partitioned stream (:mod:`.nonuniform`):
a stage's spectra of past windows times its partitions, summed a share at a time
(:class:`StageSpectra`), and the head's one product per chunk (:class:`HeadProduct`).

Both take the layout of the layer, as :mod:`.delay_line` does: when each output channel
reads one input channel (depthwise, one channel, a multiplier per channel), spectra are
block-major and a product is elementwise; otherwise they are frequency-major and a product
is a batched matrix product per (group, bin) over (partitions x input channels). Nothing
here allocates after construction.
"""

from __future__ import annotations

import torch

from autoconv.strategies.streaming.delay_line import _Ring


class _Layout:
    """Shapes of a layer's spectra: ``(batch, groups, inputs per group, outputs per group,
    bins)``, and the spectrum of the outputs ``(B, C_out, bins)``."""

    def __init__(self, kernel: torch.Tensor, groups: int, batch: int) -> None:
        _, out_channels, in_per_group, bins = kernel.shape
        self.shape = (batch, groups, in_per_group, out_channels // groups, bins)
        self.elementwise = in_per_group == 1
        #: the outputs' spectrum, (B, C_out, bins)
        self.output = kernel.new_empty(batch, out_channels, bins)

    def frequency_major(self, kernel: torch.Tensor) -> torch.Tensor:
        """Partitions ``(count, C_out, C_in / groups, bins)`` as ``(groups * bins,
        count * inputs per group, outputs per group)``."""
        _, groups, in_per_group, per_group, bins = self.shape
        grouped = kernel.view(-1, groups, per_group, in_per_group, bins)
        return (grouped.permute(1, 4, 0, 3, 2).contiguous()
                .view(groups * bins, -1, per_group))

    def lay_out(self, frequency_major: torch.Tensor) -> None:
        """Copy a product ``(groups, bins, batch, outputs per group)`` to :attr:`output`."""
        batch, groups, _, per_group, bins = self.shape
        self.output.view(batch, groups, per_group, bins).copy_(
            frequency_major.permute(2, 0, 3, 1))


class StageSpectra(_Layout):
    """A stage's spectra of past windows and the sum of their products with its partitions.

    Args:
        kernel: the stage's partitions ``(count, C_out, C_in / groups, bins)``.
        groups, batch: the layer's groups, rows per chunk.
        most: the most partitions multiplied at a time.
    """

    def __init__(self, kernel: torch.Tensor, groups: int, batch: int, most: int) -> None:
        super().__init__(kernel, groups, batch)
        batch, groups, in_per_group, per_group, bins = self.shape
        count = kernel.shape[0]
        make = {"dtype": kernel.dtype, "device": kernel.device}
        if self.elementwise:
            self._kernel = kernel.reshape(count, 1, groups, per_group, bins).contiguous()
            self._ring = _Ring(torch.zeros(2 * count, batch, groups, 1, bins, **make), 0,
                               count, False)
            self._products = torch.empty(most, batch, groups, per_group, bins, **make)
            self._sum = self.output.view(batch, groups, per_group, bins)
            self._share = torch.empty_like(self._sum)
        else:
            self._kernel = self.frequency_major(kernel)
            self._ring = _Ring(torch.zeros(groups, bins, batch, 2 * count, in_per_group,
                                           **make), 3, count, False)
            self._sum = torch.empty(groups, bins, batch, per_group, **make)

    def push(self, spectrum: torch.Tensor) -> None:
        """The newest window's spectrum ``(B * C_in, bins)`` becomes age 0."""
        batch, groups, in_per_group, _, bins = self.shape
        grouped = spectrum.view(batch, groups, in_per_group, bins)
        self._ring.push(grouped if self.elementwise else grouped.permute(1, 3, 0, 2))

    def accumulate(self, first: int, end: int) -> None:
        """Add partitions ``first..end`` times the spectra of the same ages to the sum
        (``first == 0`` starts it)."""
        window = self._ring.window(first, end)
        if self.elementwise:
            if end - first == 1:
                if first == 0:
                    torch.mul(window[0], self._kernel[first], out=self._sum)
                else:
                    self._sum.addcmul_(window[0], self._kernel[first])
                return
            products = self._products[:end - first]
            torch.mul(window, self._kernel[first:end], out=products)
            if first == 0:
                torch.sum(products, 0, out=self._sum)
            else:
                torch.sum(products, 0, out=self._share)
                self._sum.add_(self._share)
            return
        batch, groups, in_per_group, per_group, bins = self.shape
        rows = window.reshape(groups * bins, batch, (end - first) * in_per_group)
        kernel = self._kernel[:, first * in_per_group:end * in_per_group]
        target = self._sum.view(groups * bins, batch, per_group)
        if first == 0:
            torch.bmm(rows, kernel, out=target)
        else:
            target.baddbmm_(rows, kernel)

    def finish(self) -> None:
        """Lay the sum out as :attr:`output` (it already is, elementwise)."""
        if not self.elementwise:
            self.lay_out(self._sum)

    def reset(self) -> None:
        self._ring.reset()


class HeadProduct(_Layout):
    """The spectrum of one window (in a buffer of its own) times the head's kernel, into
    :attr:`output`.

    Args:
        kernel: the head's spectrum ``(1, C_out, C_in / groups, bins)``.
        groups, batch: the layer's groups, rows per chunk.

    Attributes:
        spectrum: where the window's spectrum goes, ``(B * C_in, bins)``.
    """

    def __init__(self, kernel: torch.Tensor, groups: int, batch: int) -> None:
        super().__init__(kernel, groups, batch)
        batch, groups, in_per_group, per_group, bins = self.shape
        self.spectrum = kernel.new_empty(batch * groups * in_per_group, bins)
        self._grouped = self.spectrum.view(batch, groups, in_per_group, bins)
        if self.elementwise:
            self._kernel = kernel.reshape(groups, per_group, bins).contiguous()
            self._target = self.output.view(batch, groups, per_group, bins)
        else:
            self._kernel = self.frequency_major(kernel)
            self._input = kernel.new_empty(groups, bins, batch, in_per_group)
            self._product = kernel.new_empty(groups, bins, batch, per_group)
            self._transposed = self._grouped.permute(1, 3, 0, 2)
            self._rows = self._input.view(groups * bins, batch, in_per_group)
            self._target = self._product.view(groups * bins, batch, per_group)

    def multiply(self) -> torch.Tensor:
        """:attr:`output` = :attr:`spectrum` times the kernel."""
        if self.elementwise:
            torch.mul(self._grouped, self._kernel, out=self._target)
        else:
            self._input.copy_(self._transposed)
            torch.bmm(self._rows, self._kernel, out=self._target)
            self.lay_out(self._product)
        return self.output
