"""The frequency-domain products of a non-uniformly partitioned stream (:mod:`.nonuniform`):
a stage's spectra of past windows times its partitions, summed a share at a time
(:class:`StageSpectra`), and the head's one product per chunk (:class:`HeadProduct`).

Both take the layout of the layer, as :mod:`.delay_line` does: when each output channel
reads one input channel (depthwise, one channel, a multiplier per channel), spectra are
block-major and a product is elementwise; otherwise they are frequency-major and a product
is a batched matrix product per (group, bin) over (partitions x input channels). Nothing
here allocates after construction, but a new weight's kernels.

What depends on the weight is a *kernel* (:class:`StageKernel`, :class:`HeadKernel`): the
partitions' spectra, and a stage's sum of products under way. The spectra of past windows are
the input's: during a crossfade a stage multiplies them by both weights' kernels, and a new
weight's sums are computed from them as if it had been there from the start
(:meth:`StageSpectra.kernel`, :meth:`StageSpectra.block_sum`).
"""

from __future__ import annotations

import torch

from autoconv.strategies.streaming.delay_line import _Ring


class _Layout:
    """Shapes of a layer's spectra: ``(batch, groups, inputs per group, outputs per group,
    bins)``, of ``like``'s dtype and device.

    Args:
        like: a kernel ``(count, C_out, C_in / groups, bins)`` (any count, 0 included).
        groups, batch: the layer's groups, rows per chunk.
    """

    def __init__(self, like: torch.Tensor, groups: int, batch: int) -> None:
        _, out_channels, in_per_group, bins = like.shape
        self.shape = (batch, groups, in_per_group, out_channels // groups, bins)
        self.elementwise = in_per_group == 1
        self.make = {"dtype": like.dtype, "device": like.device}

    def frequency_major(self, kernel: torch.Tensor) -> torch.Tensor:
        """Partitions ``(count, C_out, C_in / groups, bins)`` as ``(groups * bins,
        count * inputs per group, outputs per group)``."""
        _, groups, in_per_group, per_group, bins = self.shape
        grouped = kernel.view(-1, groups, per_group, in_per_group, bins)
        return (grouped.permute(1, 4, 0, 3, 2).contiguous()
                .view(groups * bins, -1, per_group))

    def lay_out(self, frequency_major: torch.Tensor, output: torch.Tensor) -> None:
        """Copy a product ``(groups, bins, batch, outputs per group)`` to ``output``
        ``(B, C_out, bins)``."""
        batch, groups, _, per_group, bins = self.shape
        output.view(batch, groups, per_group, bins).copy_(frequency_major.permute(2, 0, 3, 1))


class StageKernel:
    """One weight's partitions of a stage, in the stage's layout, and their sum of products
    under way.

    Attributes:
        output: the spectrum of the stage's outputs ``(B, C_out, bins)``, once finished.
    """

    __slots__ = ("kernel", "output", "sum")

    def __init__(self, kernel: torch.Tensor, sum_: torch.Tensor, output: torch.Tensor) -> None:
        self.kernel, self.sum, self.output = kernel, sum_, output


class StageSpectra(_Layout):
    """A stage's spectra of past windows and the sums of their products with each kernel's
    partitions.

    Args:
        like: a kernel of no partitions ``(0, C_out, C_in / groups, bins)``: the layout.
        count: the stage's partitions.
        groups, batch: the layer's groups, rows per chunk.
        most: the most partitions multiplied at a time.

    Attributes:
        kernels: the kernels whose sums it accumulates (the stream's, oldest first; none
            until the engine sets them).
    """

    def __init__(self, like: torch.Tensor, count: int, groups: int, batch: int,
                 most: int) -> None:
        super().__init__(like, groups, batch)
        batch, groups, in_per_group, per_group, bins = self.shape
        self.count, make = count, self.make
        # one window more than the partitions: a new weight recomputes the block before
        if self.elementwise:
            self._ring = _Ring(torch.zeros(2 * (count + 1), batch, groups, 1, bins, **make), 0,
                               count + 1, False)
            self._products = torch.empty(most, batch, groups, per_group, bins, **make)
            self._share = torch.empty(batch, groups, per_group, bins, **make)
        else:
            self._ring = _Ring(torch.zeros(groups, bins, batch, 2 * (count + 1), in_per_group,
                                           **make), 3, count + 1, False)
        self.kernels: list[StageKernel] = []

    def kernel(self, kernel: torch.Tensor) -> StageKernel:
        """The partitions ``kernel`` (as for the constructor), with a sum of their own."""
        batch, groups, _, per_group, bins = self.shape
        output = kernel.new_zeros(batch, groups * per_group, bins)
        if self.elementwise:
            prepared = kernel.reshape(-1, 1, groups, per_group, bins).contiguous()
            return StageKernel(prepared, output.view(batch, groups, per_group, bins), output)
        return StageKernel(self.frequency_major(kernel),
                           kernel.new_zeros(groups, bins, batch, per_group), output)

    def push(self, spectrum: torch.Tensor) -> None:
        """The newest window's spectrum ``(B * C_in, bins)`` becomes age 0."""
        batch, groups, in_per_group, _, bins = self.shape
        grouped = spectrum.view(batch, groups, in_per_group, bins)
        self._ring.push(grouped if self.elementwise else grouped.permute(1, 3, 0, 2))

    def accumulate(self, first: int, end: int) -> None:
        """Add partitions ``first..end`` times the spectra of the same ages to each kernel's
        sum (``first == 0`` starts it)."""
        for kernel in self.kernels:
            self._accumulate(kernel, first, end)

    def _accumulate(self, stage: StageKernel, first: int, end: int) -> None:
        window = self._ring.window(first, end)
        if self.elementwise:
            if end - first == 1:
                if first == 0:
                    torch.mul(window[0], stage.kernel[first], out=stage.sum)
                else:
                    stage.sum.addcmul_(window[0], stage.kernel[first])
                return
            products = self._products[:end - first]
            torch.mul(window, stage.kernel[first:end], out=products)
            if first == 0:
                torch.sum(products, 0, out=stage.sum)
            else:
                torch.sum(products, 0, out=self._share)
                stage.sum.add_(self._share)
            return
        batch, groups, in_per_group, per_group, bins = self.shape
        rows = window.reshape(groups * bins, batch, (end - first) * in_per_group)
        kernel = stage.kernel[:, first * in_per_group:end * in_per_group]
        target = stage.sum.view(groups * bins, batch, per_group)
        if first == 0:
            torch.bmm(rows, kernel, out=target)
        else:
            target.baddbmm_(rows, kernel)

    def finish(self, stage: StageKernel) -> torch.Tensor:
        """Lay ``stage``'s sum out as its output (it already is, elementwise); the output."""
        if not self.elementwise:
            self.lay_out(stage.sum, stage.output)
        return stage.output

    def resume(self, stage: StageKernel, accumulated: int) -> None:
        """Make ``stage``'s sum the one of the block under way, whose first ``accumulated``
        partitions are done (with the spectra of ages ``0..accumulated``)."""
        if accumulated:
            self._accumulate(stage, 0, accumulated)

    def block_sum(self, stage: StageKernel, age: int) -> torch.Tensor:
        """The spectrum ``(B, C_out, bins)`` of a whole block of ``stage``'s products with
        the windows of ages ``age .. age + count`` (a new allocation: for a new weight)."""
        window = self._ring.window(age, age + self.count)
        batch, groups, in_per_group, per_group, bins = self.shape
        if self.elementwise:
            return (window * stage.kernel).sum(0).reshape(batch, -1, bins)
        rows = window.reshape(groups * bins, batch, self.count * in_per_group)
        output = stage.output.new_empty(batch, groups * per_group, bins)
        self.lay_out(torch.bmm(rows, stage.kernel).view(groups, bins, batch, per_group), output)
        return output

    def reset(self) -> None:
        self._ring.reset()


class HeadKernel:
    """One weight's head spectrum, in the layout of :class:`HeadProduct`."""

    __slots__ = ("kernel",)

    def __init__(self, kernel: torch.Tensor) -> None:
        self.kernel = kernel


class HeadProduct(_Layout):
    """The spectrum of one window (in a buffer of its own) times a head kernel, into
    :attr:`output`.

    Args:
        like, groups, batch: the layout (as for :class:`StageSpectra`).

    Attributes:
        spectrum: where the window's spectrum goes, ``(B * C_in, bins)``.
        output: the product ``(B, C_out, bins)``.
    """

    def __init__(self, like: torch.Tensor, groups: int, batch: int) -> None:
        super().__init__(like, groups, batch)
        batch, groups, in_per_group, per_group, bins = self.shape
        self.spectrum = torch.empty(batch * groups * in_per_group, bins, **self.make)
        self.output = torch.empty(batch, groups * per_group, bins, **self.make)
        self._grouped = self.spectrum.view(batch, groups, in_per_group, bins)
        if self.elementwise:
            self._target = self.output.view(batch, groups, per_group, bins)
        else:
            self._input = torch.empty(groups, bins, batch, in_per_group, **self.make)
            self._product = torch.empty(groups, bins, batch, per_group, **self.make)
            self._transposed = self._grouped.permute(1, 3, 0, 2)
            self._rows = self._input.view(groups * bins, batch, in_per_group)
            self._target = self._product.view(groups * bins, batch, per_group)

    def kernel(self, kernel: torch.Tensor) -> HeadKernel:
        """A head spectrum ``(1, C_out, C_in / groups, bins)`` in this product's layout."""
        _, groups, _, per_group, bins = self.shape
        if self.elementwise:
            return HeadKernel(kernel.reshape(groups, per_group, bins).contiguous())
        return HeadKernel(self.frequency_major(kernel))

    def transform_input(self) -> None:
        """Lay :attr:`spectrum` out for the products (once per window, for every kernel)."""
        if not self.elementwise:
            self._input.copy_(self._transposed)

    def multiply(self, head: HeadKernel) -> torch.Tensor:
        """:attr:`output` = :attr:`spectrum` times ``head`` (after
        :meth:`transform_input`)."""
        if self.elementwise:
            torch.mul(self._grouped, head.kernel, out=self._target)
        else:
            torch.bmm(self._rows, head.kernel, out=self._target)
            self.lay_out(self._product, self.output)
        return self.output
