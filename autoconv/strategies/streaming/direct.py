"""Stateful direct streaming: the last ``dilation * (K - 1)`` input samples are kept, and each
chunk is convolved together with them by ``F.conv1d`` (oneDNN / cuDNN), without padding.

Per chunk it does exactly the work of the chunk's outputs, which makes it the fastest way for
short kernels and the reference for the others. Its one allocation per chunk is the
convolution's own output (there is no ``out=`` form of it); the history is kept in a buffer
allocated once.

Two layouts of that buffer, tuned like any other parameter:

- channel-major (the default, no parameters): ``(B, C, history + chunk)``, the layout of the
  chunks, convolved by ``F.conv1d`` itself;
- time-major (``time_major=1``): ``(B, history + chunk, C)``, the channels of one sample
  side by side, convolved as a one-row image in channels-last layout (``F.conv2d`` with a
  ``(1, K)`` kernel, the same sums). oneDNN's depthwise kernels vectorise over channels in
  that layout: on a depthwise layer of a streaming recogniser (256 channels, K=31, chunks of
  40) it runs the convolution about 1.3x faster, which the transposing copies in and out of
  the buffer (a chunk each) do not undo; on dense layers it is often slower. The tuner
  measures both.

A new weight (``set_weight``) is a new weight for the same history; during a crossfade each
chunk is convolved with both weights and the outputs mixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from autoconv import plain
from autoconv.signature import Signature
from autoconv.strategies.registry import check_int, check_names
from autoconv.strategies.streaming.crossfade import Crossfade


class StatefulDirect:
    """The history-plus-chunk engine, channel-major (see the module docstring).

    Args:
        weight: ``(C_out, C_in / groups, K)``, detached.
        bias: ``(C_out,)`` or None.
        dilation, groups: as for ``F.conv1d``.
        batch: rows per chunk.
        chunk_size: the longest chunk.
    """

    #: the buffer's time dimension
    time_dim = -1

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, dilation: int,
                 groups: int, batch: int, chunk_size: int) -> None:
        self.weight, self.bias = self._prepared(weight), bias
        self.dilation, self.groups = dilation, groups
        self.history = dilation * (weight.shape[-1] - 1)
        channels = weight.shape[1] * groups
        make = {"dtype": weight.dtype, "device": weight.device}
        #: the history, then room for one chunk
        self._buffer = torch.zeros(self._shape(batch, channels, self.history + chunk_size),
                                   **make)
        #: where the new history goes when it overlaps the old one (chunk shorter than it)
        self._scratch = torch.empty(self._shape(batch, channels, self.history), **make)
        self._fade: Crossfade | None = None

    @staticmethod
    def _prepared(weight: torch.Tensor) -> torch.Tensor:
        return weight

    @staticmethod
    def _shape(batch: int, channels: int, length: int) -> tuple[int, int, int]:
        return batch, channels, length

    def _load(self, chunk: torch.Tensor) -> None:
        """Copy the chunk in after the history."""
        n, history = chunk.shape[-1], self.history
        self._buffer[..., history:history + n].copy_(chunk)

    def _convolve(self, n: int, weight: torch.Tensor, bias: torch.Tensor | None
                  ) -> torch.Tensor:
        """Convolve the history and the ``n`` samples after it."""
        return plain.conv1d(self._buffer[..., :self.history + n], weight, bias, 1, 0,
                            self.dilation, self.groups)

    def step(self, chunk: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The chunk's causal outputs (see :class:`~autoconv.strategies.streaming.registry.
        StreamEngine`)."""
        n, fade = chunk.shape[-1], self._fade
        self._load(chunk)
        result = self._convolve(n, self.weight, self.bias)
        old = None if fade is None else self._convolve(n, *fade.old)
        _keep_history(self._buffer, self._scratch, n, self.history, self.time_dim)
        out = result.contiguous() if out is None else out.copy_(result)  # a no-op channel-major
        if fade is not None and fade.mix(old, out):  # type: ignore[arg-type]
            self._fade = None
        return out

    def set_weight(self, weight: torch.Tensor, bias: torch.Tensor | None, *,
                   crossfade: int = 0, ramp: str = "linear") -> None:
        """A new weight for the same history (see :class:`~autoconv.strategies.streaming.
        registry.StreamEngine`); the old one is kept for the ramp's chunks."""
        old = (self.weight, self.bias)
        self.weight, self.bias = self._prepared(weight), bias
        self._fade = (Crossfade(old, crossfade, ramp, weight.new_empty(0)) if crossfade
                      else None)

    def reset(self) -> None:
        """Forget the history (and a crossfade under way)."""
        self._buffer.zero_()
        self._fade = None


class TimeMajorDirect(StatefulDirect):
    """The history-plus-chunk engine, time-major (see the module docstring): the buffer is
    ``(B, history + chunk, C)`` and the weight ``(C_out, C_in / groups, 1, K)``,
    channels-last like the image the buffer is seen as.

    Args: as for :class:`StatefulDirect`.
    """

    time_dim = 1

    @staticmethod
    def _prepared(weight: torch.Tensor) -> torch.Tensor:
        return weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)

    @staticmethod
    def _shape(batch: int, channels: int, length: int) -> tuple[int, int, int]:
        return batch, length, channels

    def _load(self, chunk: torch.Tensor) -> None:
        n, history = chunk.shape[-1], self.history
        self._buffer[:, history:history + n].copy_(chunk.transpose(1, 2))

    def _convolve(self, n: int, weight: torch.Tensor, bias: torch.Tensor | None
                  ) -> torch.Tensor:
        # (B, C, 1, history + n), strided as channels-last: the buffer itself, not a copy
        image = self._buffer[:, :self.history + n].transpose(1, 2).unsqueeze(2)
        return F.conv2d(image, weight, bias, 1, 0, (1, self.dilation), self.groups).squeeze(2)


def _keep_history(buffer: torch.Tensor, scratch: torch.Tensor, n: int, history: int,
                  dim: int) -> None:
    """Move the last ``history`` samples of the buffer's first ``history + n`` (along
    ``dim``) to its start, through ``scratch`` where the two overlap (``n < history``)."""
    if not history:
        return
    kept = buffer.narrow(dim, n, history)
    if n < history:
        kept = scratch.copy_(kept)
    buffer.narrow(dim, 0, history).copy_(kept)


def build_direct(weight: torch.Tensor, bias: torch.Tensor | None, *, dilation: int,
                 groups: int, batch: int, chunk_size: int, time_major: int = 0
                 ) -> StatefulDirect | TimeMajorDirect:
    """The :data:`~autoconv.strategies.streaming.registry.Builder` of stateful direct."""
    engine = TimeMajorDirect if time_major else StatefulDirect
    return engine(weight, bias, dilation=dilation, groups=groups, batch=batch,
                  chunk_size=chunk_size)


def direct_layouts(signature: Signature) -> list[dict[str, Any]]:
    """Both buffer layouts."""
    return [{}, {"time_major": 1}]


def check_direct_params(signature: Signature, params: Mapping[str, Any]) -> None:
    """Only ``time_major``, 0 or 1.

    Raises:
        ValueError, TypeError: any other parameter or value.
    """
    check_names(params, {"time_major"}, "stateful_direct")
    check_int(params, "time_major", 0, 1)


def direct_flops(signature: Signature, params: Mapping[str, Any]) -> float:
    """Multiply-adds of one full chunk, times two."""
    s = signature
    return 2.0 * s.batch * s.out_channels * (s.in_channels // s.groups) * s.kernel_size * s.length
