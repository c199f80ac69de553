"""Streams of ``nn.Conv1d`` modules (``autoconv.Conv1d.stream``): which modules can stream,
and what their stream equals.

A stream computes the causal convolution, with no latency. A module streams when its own
output is that convolution up to zero padding it does not need:

- ``padding=0`` (or ``'valid'``): the stream equals the module applied to the signal
  left-padded with ``dilation * (kernel_size - 1)`` zeros (the usual causal convolution:
  pad on the left, then convolve);
- ``padding=dilation * (kernel_size - 1)`` on both sides: the stream equals the first ``n``
  outputs of the module on ``n`` samples (the "pad both sides, trim the right" causal
  convolution of WaveNet-style models).

Any other padding (``'same'``, or an amount between) makes every output depend on later
samples: exact, it could only stream with that many samples of latency, so it is refused, as
are strides other than 1 (fewer outputs than inputs) and padding modes other than zeros
(``reflect`` and ``replicate`` read samples that have not arrived yet, ``circular`` the end
of the signal).
"""

from __future__ import annotations

from torch import nn

from autoconv.streaming.stream import Conv1dStream


def causal_history(module: nn.Conv1d) -> int:
    """The left padding the module's stream applies, ``dilation * (kernel_size - 1)``, after
    checking that the module streams (see the module docstring).

    Raises:
        TypeError: not an ``nn.Conv1d``.
        ValueError: a stride other than 1, a padding mode other than zeros, or a padding
            that needs look-ahead (the message says which and what would stream).
    """
    if not isinstance(module, nn.Conv1d):
        raise TypeError(f"only an nn.Conv1d can stream, not {type(module).__name__}")
    history = module.dilation[0] * (module.kernel_size[0] - 1)
    name = f"{type(module).__name__}({module.extra_repr()})"
    if module.stride[0] != 1:
        raise ValueError(f"{name} cannot stream: stride {module.stride[0]} gives fewer outputs "
                         "than inputs; a stream gives one output per input sample (stride 1)")
    if module.padding_mode != "zeros":
        raise ValueError(f"{name} cannot stream: padding_mode={module.padding_mode!r} pads with "
                         "samples that have not arrived yet; a stream pads with zeros")
    padding = module.padding
    left = 0 if padding == "valid" else history // 2 if padding == "same" else padding[0]
    if left not in (0, history):
        raise ValueError(
            f"{name} cannot stream without latency: padding={padding!r} makes each output "
            f"depend on {history - left} later samples. A stream computes the causal "
            f"convolution: make the module with padding=0 (the stream then equals it on the "
            f"signal left-padded with {history} zeros) or padding={history} (the stream is "
            f"the first n of its outputs), or use autoconv.Conv1dStream(weight, bias, ...)")
    return history


def stream_of_module(module: nn.Conv1d, chunk_size: int, *,
                     sample_rate: float | None = None) -> Conv1dStream:
    """A :class:`Conv1dStream` of ``module``'s current weight and bias (a parametrized
    module's weight is computed once, now), after :func:`causal_history`'s checks."""
    causal_history(module)
    return Conv1dStream(module.weight, module.bias, dilation=module.dilation[0],
                        groups=module.groups, chunk_size=chunk_size, sample_rate=sample_rate)
