"""Stateful direct streaming: the last ``dilation * (K - 1)`` input samples are kept, and each
chunk is convolved together with them by ``F.conv1d`` (oneDNN / cuDNN), without padding.

Per chunk it does exactly the work of the chunk's outputs, which makes it the fastest way for
short kernels and the reference for the others. Its one allocation per chunk is
``F.conv1d``'s own output (there is no ``out=`` form of it); the history is kept in a buffer
allocated once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from autoconv import plain
from autoconv.signature import Signature


class StatefulDirect:
    """The history-plus-chunk engine (see the module docstring).

    Args:
        weight: ``(C_out, C_in / groups, K)``, detached.
        bias: ``(C_out,)`` or None.
        dilation, groups: as for ``F.conv1d``.
        batch: rows per chunk.
        chunk_size: the longest chunk.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, dilation: int,
                 groups: int, batch: int, chunk_size: int) -> None:
        self.weight, self.bias = weight, bias
        self.dilation, self.groups = dilation, groups
        self.history = dilation * (weight.shape[-1] - 1)
        channels = weight.shape[1] * groups
        make = {"dtype": weight.dtype, "device": weight.device}
        #: the history, then room for one chunk
        self._buffer = torch.zeros(batch, channels, self.history + chunk_size, **make)
        #: where the new history goes when it overlaps the old one (chunk shorter than it)
        self._scratch = torch.empty(batch, channels, self.history, **make)

    def step(self, chunk: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The chunk's causal outputs (see :class:`~autoconv.strategies.streaming.registry.
        StreamEngine`)."""
        n, history, buffer = chunk.shape[-1], self.history, self._buffer
        buffer[..., history:history + n].copy_(chunk)
        result = plain.conv1d(buffer[..., :history + n], self.weight, self.bias, 1, 0,
                              self.dilation, self.groups)
        if history:
            kept = buffer[..., n:n + history]
            if n < history:  # the new history overlaps the old: go through the scratch
                kept = self._scratch.copy_(kept)
            buffer[..., :history].copy_(kept)
        if out is None:
            return result
        return out.copy_(result)

    def reset(self) -> None:
        """Forget the history."""
        self._buffer.zero_()


def build_direct(weight: torch.Tensor, bias: torch.Tensor | None, *, dilation: int,
                 groups: int, batch: int, chunk_size: int) -> StatefulDirect:
    """The :data:`~autoconv.strategies.streaming.registry.Builder` of stateful direct."""
    return StatefulDirect(weight, bias, dilation=dilation, groups=groups, batch=batch,
                          chunk_size=chunk_size)


def direct_flops(signature: Signature, params: Mapping[str, Any]) -> float:
    """Multiply-adds of one full chunk, times two."""
    s = signature
    return 2.0 * s.batch * s.out_channels * (s.in_channels // s.groups) * s.kernel_size * s.length
