"""Streams with latency: each chunk's outputs may come up to ``latency`` samples late, which
lets a strategy work on larger blocks than the chunk.

A stream of latency ``L`` gives, for input sample ``n``, the output of sample ``n - L`` (the
first ``L`` outputs are zeros, bias or not). Its signature records the latency as ``L`` more
samples of left padding (:meth:`~autoconv.signature.Signature.of_stream`: ``padding_left =
dilation * (K - 1) + L``, read back as :attr:`~autoconv.signature.Signature.latency`), so that
its decisions are stored apart from those of latency 0, in the same rows and keys, with no
new column and no migration.

Any strategy runs such a stream through :class:`Delayed`: the chunks are gathered into blocks
of ``block`` samples (the parameter :data:`BLOCK`, a power-of-two multiple of the chunk size
up to ``chunk + L``; the chunk size itself when absent), each block goes to the strategy's
engine built for chunks of ``block``, and its outputs wait in a buffer until they are due.
With chunks of ``chunk_size`` samples every block is whole when it is due; a shorter chunk
may make outputs due before their block is whole, and the samples so far are then given to
the engine as a shorter chunk (exact, as any chunk is), after which blocks line up again.
So with ``L >= partition - chunk``, uniform partitioning with a partition of the block needs
no transform of a partial block each chunk, and non-uniform partitioning transforms its head
once a block instead of once a chunk. The work of a block is done by the chunk that completes
it: the average chunk is cheaper, the chunks are uneven (the tuner measures the average over
a whole period).

:func:`with_latency` makes a registry entry latency-aware: its grid adds the blocks a
signature's latency allows (:func:`blocks`), its check, period and operation count read
:data:`BLOCK`; :func:`delayed_engine` builds the engine.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from autoconv.signature import Signature
from autoconv.strategies.registry import check_int

#: The parameter: samples per block given to the strategy's engine.
BLOCK = "latency_block"
#: The largest block tried or accepted, in samples.
MAX_BLOCK = 16384
#: Blocks larger than the chunk tried: the largest ones the latency allows.
LARGER_BLOCKS = 2


def latency_of(signature: Signature) -> int:
    """A stream signature's latency (0 for a conv1d call)."""
    return signature.latency


def block_signature(signature: Signature, block: int) -> Signature:
    """The signature of a stream of ``block``-sample chunks without latency (what a block's
    engine runs)."""
    return dataclasses.replace(signature, length=block, chunk_size=block,
                               padding_left=signature.span - 1)


def blocks(signature: Signature) -> list[int]:
    """The chunk size, then the :data:`LARGER_BLOCKS` largest power-of-two multiples of it
    up to ``chunk + latency`` (and :data:`MAX_BLOCK`), smallest first."""
    chunk, latency = signature.length, latency_of(signature)
    larger = [chunk << k for k in range(1, MAX_BLOCK.bit_length())
              if chunk << k <= min(chunk + latency, MAX_BLOCK)]
    return [chunk, *larger[-LARGER_BLOCKS:]]


def split(signature: Signature, params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """``(block, the strategy's own parameters)`` of a parameter set."""
    rest = dict(params)
    return int(rest.pop(BLOCK, None) or signature.length), rest


def check_block(signature: Signature, params: Mapping[str, Any]) -> None:
    """:data:`BLOCK`, when given: a power-of-two multiple of the chunk size above it, at most
    ``chunk + latency`` and :data:`MAX_BLOCK`.

    Raises:
        ValueError, TypeError: a block the signature's latency does not allow.
    """
    if BLOCK not in params:
        return
    chunk, latency = signature.length, latency_of(signature)
    check_int(params, BLOCK, chunk + 1, MAX_BLOCK)
    block = params[BLOCK]
    multiple = block // chunk
    if block % chunk or multiple & (multiple - 1):
        raise ValueError(f"{BLOCK}={block} is not a power-of-two multiple of the chunk size "
                         f"{chunk}")
    if block > chunk + latency:
        raise ValueError(f"{BLOCK}={block} needs a latency of {block - chunk} samples; the "
                         f"stream's is {latency}")


def with_latency(strategy: Any) -> Any:
    """``strategy`` (a :class:`~.registry.StreamStrategy`) with its grid, check, period and
    operation count made aware of a signature's latency (see the module docstring); the same
    for a signature without latency."""
    if getattr(strategy.param_grid, "latency_aware", False):
        return strategy
    grid, check, period, flops = (strategy.param_grid, strategy.validate, strategy.period,
                                  strategy.flops)
    supports = strategy.supports

    def param_grid(signature: Signature) -> list[dict[str, Any]]:
        if not latency_of(signature):
            return grid(signature)
        found = []
        for block in blocks(signature):
            inner = block_signature(signature, block)
            if block == signature.length or supports(inner):
                found += [p if block == signature.length else {**p, BLOCK: block}
                          for p in grid(inner)]
        return found

    def checked(signature: Signature, params: Mapping[str, Any]) -> None:
        check_block(signature, params)
        block, rest = split(signature, params)
        check(block_signature(signature, block) if latency_of(signature) else signature, rest)

    def periodic(signature: Signature, params: Mapping[str, Any]) -> int:
        if not latency_of(signature):
            return period(signature, params)
        block, rest = split(signature, params)
        chunk = signature.length
        own = period(block_signature(signature, block), rest) * (block // chunk)
        # a cycle longer than the latency: its last chunk's outputs are not all zeros
        seen = 1 << math.ceil(math.log2(-(-(latency_of(signature) + chunk) // chunk)))
        return math.lcm(own, seen)

    def operations(signature: Signature, params: Mapping[str, Any]) -> float:
        if not latency_of(signature):
            return flops(signature, params)
        block, rest = split(signature, params)
        return flops(block_signature(signature, block), rest) * signature.length / block

    param_grid.latency_aware = True  # type: ignore[attr-defined]
    return dataclasses.replace(strategy, param_grid=param_grid, check=checked,
                               period=periodic, flops=operations,
                               size_params=strategy.size_params | {BLOCK})


def delayed_engine(build: Callable[..., Any], weight: torch.Tensor, bias: torch.Tensor | None,
                   *, dilation: int, groups: int, batch: int, chunk_size: int, latency: int,
                   params: Mapping[str, Any]) -> Delayed:
    """A :class:`Delayed` engine of ``latency`` over the engine ``build`` makes for chunks of
    the block ``params`` name (the chunk size by default)."""
    rest = dict(params)
    block = int(rest.pop(BLOCK, None) or chunk_size)
    inner = build(weight, bias, dilation=dilation, groups=groups, batch=batch,
                  chunk_size=block, **rest)
    return Delayed(inner, weight, batch=batch, in_channels=weight.shape[1] * groups,
                   chunk=chunk_size, block=block, latency=latency)


class Delayed:
    """An engine whose outputs come ``latency`` samples late, over an engine fed blocks of
    ``block`` samples (see the module docstring). Nothing is allocated per chunk beyond what
    the inner engine allocates.

    Args:
        inner: the engine, built for chunks of ``block``.
        like: the weight ``(C_out, C_in / groups, K)``: output channels, dtype and device.
        batch, in_channels: the chunks' rows and channels.
        chunk: the stream's chunk size.
        block: samples per block (``chunk <= block``).
        latency: samples of delay (``block - chunk <= latency`` for whole blocks).
    """

    def __init__(self, inner: Any, like: torch.Tensor, *, batch: int, in_channels: int,
                 chunk: int, block: int, latency: int) -> None:
        self._inner, self.block, self.latency = inner, block, latency
        # room for three times what may wait, so that moving it back never overlaps
        self._input = like.new_zeros(batch, in_channels, 3 * (block + chunk))
        self._output = like.new_zeros(batch, like.shape[0], 3 * (latency + chunk + block))
        self._clear()

    def _clear(self) -> None:
        self._read = self._write = 0  # the input waiting for its block: [read, write)
        self._done = 0  # inputs given to the inner engine: outputs computed
        self._given = 0  # outputs returned
        self._base = 0  # the output of ``_output[..., 0]``

    def reset(self) -> None:
        """Forget every sample seen."""
        self._inner.reset()
        self._clear()

    def step(self, chunk: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The chunk's outputs, ``latency`` samples late (see
        :class:`~autoconv.strategies.streaming.registry.StreamEngine`)."""
        n = chunk.shape[-1]
        if out is None:
            out = self._output.new_empty(self._output.shape[0], self._output.shape[1], n)
        self._take(chunk)
        while self._write - self._read >= self.block - self._done % self.block:
            self._run(self.block - self._done % self.block)
        due = self._given + n - self.latency - self._done  # outputs due, not computed yet
        if due > 0:
            self._run(due)
        zeros = min(n, max(0, self.latency - self._given))
        if zeros:
            out[..., :zeros].zero_()
        if zeros < n:
            start = self._given + zeros - self.latency - self._base
            out[..., zeros:].copy_(self._output[..., start:start + n - zeros])
        self._given += n
        return out

    def _take(self, chunk: torch.Tensor) -> None:
        """Append the chunk to the input waiting (moved back first when the buffer is full)."""
        n, buffer = chunk.shape[-1], self._input
        if self._write + n > buffer.shape[-1]:
            waiting = self._write - self._read
            buffer[..., :waiting].copy_(buffer[..., self._read:self._write])
            self._read, self._write = 0, waiting
        buffer[..., self._write:self._write + n].copy_(chunk)
        self._write += n

    def _run(self, n: int) -> None:
        """Give the next ``n`` waiting samples to the inner engine; keep its outputs."""
        buffer, at = self._output, self._done - self._base
        if at + n > buffer.shape[-1]:  # move the outputs not returned yet back
            first = max(self._given - self.latency, self._base)
            kept = self._done - first
            buffer[..., :kept].copy_(buffer[..., first - self._base:at])
            self._base, at = first, kept
        self._inner.step(self._input[..., self._read:self._read + n],
                         buffer[..., at:at + n])
        self._read += n
        self._done += n

    def set_weight(self, weight: torch.Tensor, bias: torch.Tensor | None, *,
                   crossfade: int = 0, ramp: str = "linear") -> None:
        """The inner engine's new weight from the next chunk's first input sample: the
        input waiting goes through the old weight first (its outputs come ``latency``
        samples later, so does the ramp)."""
        waiting = self._write - self._read
        if waiting:
            self._run(waiting)
        self._inner.set_weight(weight, bias, crossfade=crossfade, ramp=ramp)
