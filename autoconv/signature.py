"""Signature: the normalized, hashable key of one ``conv1d`` call.

A signature holds only plain ints and strings, so it can be a dict key, a database row and a
feature vector alike. Building one validates the call the way ``F.conv1d`` would, with the same
error messages, so that every strategy can rely on well-formed arguments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

import torch

from autoconv import contexts, plain

#: Bytes per element of the dtypes a signature names (8 for any other).
_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}

#: Padding as accepted by ``F.conv1d``: an int, a 1-tuple, ``'same'`` or ``'valid'``.
PaddingArg = int | tuple[int] | str


def _single(value: Any, name: str) -> int:
    """The int in ``value`` (an int or a 1-sequence), as ``torch.nn.modules.utils._single``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise RuntimeError(f"expected {name} to be a single integer value or a list of 1 "
                               f"values")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"conv1d(): argument '{name}' must be an int or a tuple of one int, "
                        f"not {type(value).__name__}")
    return value


def resolve_padding(padding: PaddingArg, kernel_size: int, dilation: int,
                    stride: int) -> tuple[int, int]:
    """Turn ``F.conv1d``'s ``padding`` argument into explicit (left, right) zero padding.

    ``'same'`` puts the odd sample of an even total on the right, as PyTorch does.

    Raises:
        RuntimeError: for an unknown padding string, negative padding, or ``'same'`` with a
            stride other than 1 (the messages ``F.conv1d`` gives).
    """
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            if stride != 1:
                raise RuntimeError("padding='same' is not supported for strided convolutions")
            total = dilation * (kernel_size - 1)
            return total // 2, total - total // 2
        raise RuntimeError(f"Invalid padding string: '{padding}'")
    pad = _single(padding, "padding")
    if pad < 0:
        raise RuntimeError("negative padding is not supported")
    return pad, pad


@dataclass(frozen=True, slots=True)
class Signature:
    """Everything about a conv1d call that can change which strategy is fastest.

    Unbatched (2-D) input is recorded as ``batch=1``: it costs the same as a batch of one.

    ``chunk_size`` is None for one ``conv1d`` call. Set, the signature is that of a *stream*
    (:mod:`autoconv.streaming`): a causal convolution fed chunks of up to ``chunk_size``
    samples, recorded as one full chunk (``length=chunk_size``, ``stride=1``,
    ``padding_left=dilation * (kernel_size - 1)``, ``padding_right=0``); the streaming
    strategies answer it, and its decisions are stored apart from those of conv1d calls. A
    stream whose outputs come ``latency`` samples late (output ``n`` is the causal convolution's
    ``n - latency``, the first ones zeros) records it as that much more ``padding_left``
    (:attr:`latency`).

    ``weight_reused`` is True for a call whose weight is the same tensor, unchanged, from one
    call to the next, and needs no gradient: an ``autoconv.Conv1d`` layer's in inference. A
    strategy that transforms the weight (the FFT strategies' spectra) then does it once, not
    on every call, so such a call is timed and decided apart from a functional call of the
    same shapes, whose weight may be new every time.
    """

    batch: int
    in_channels: int
    out_channels: int
    length: int
    kernel_size: int
    stride: int
    padding_left: int
    padding_right: int
    dilation: int
    groups: int
    dtype: str
    device: str
    requires_grad: bool = False
    chunk_size: int | None = None
    weight_reused: bool = False

    @property
    def padded_length(self) -> int:
        """Input length after zero padding."""
        return self.length + self.padding_left + self.padding_right

    @property
    def span(self) -> int:
        """Receptive field of the (dilated) kernel, in samples."""
        return self.dilation * (self.kernel_size - 1) + 1

    @property
    def output_length(self) -> int:
        """Output length, as ``F.conv1d`` computes it."""
        return (self.padded_length - self.span) // self.stride + 1

    @property
    def tensor_bytes(self) -> int:
        """Bytes of the call's input, weight and output tensors (what measuring it allocates,
        gradients aside)."""
        elements = (self.batch * self.in_channels * self.length
                    + self.out_channels * (self.in_channels // self.groups) * self.kernel_size
                    + self.batch * self.out_channels * self.output_length)
        return elements * _DTYPE_BYTES.get(self.dtype, 8)

    def short(self) -> str:
        """The signature in a few words, for warnings and the log: ``2x64x4096 K=65 -> 64
        (float32, cpu)``, with stride, dilation, groups and padding when they are not the
        defaults."""
        extras = [f"{name}={value}" for name, value, default in (
            ("stride", self.stride, 1), ("dilation", self.dilation, 1),
            ("groups", self.groups, 1)) if value != default]
        if self.padding_left or self.padding_right:
            extras.append(f"padding={self.padding_left},{self.padding_right}")
        if self.chunk_size is not None:
            extras = [f"stream of chunks of {self.chunk_size}",
                      *([f"latency {self.latency}"] if self.latency else []),
                      *(e for e in extras if not e.startswith("padding="))]
        more = f" {' '.join(extras)}" if extras else ""
        return (f"{self.batch}x{self.in_channels}x{self.length} K={self.kernel_size}{more} "
                f"-> {self.out_channels} ({self.dtype}, {self.device}"
                f"{', grad' if self.requires_grad else ''}"
                f"{', weight reused' if self.weight_reused else ''})")

    @property
    def is_degenerate(self) -> bool:
        """No batch rows or no input channels: nothing to compute, and nothing to tune
        (``F.conv1d`` answers such a call itself)."""
        return self.batch == 0 or self.in_channels == 0

    @property
    def is_depthwise(self) -> bool:
        """One input channel per group (the output may still have a multiplier per channel)."""
        return self.groups == self.in_channels and self.groups > 1

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (the shape the tuning database stores); ``chunk_size`` and
        ``weight_reused`` only when set, so a conv1d call's dict is what it always was."""
        fields = asdict(self)
        if self.chunk_size is None:
            del fields["chunk_size"]
        if not self.weight_reused:
            del fields["weight_reused"]
        return fields

    @property
    def latency(self) -> int:
        """A stream's latency: the samples of ``padding_left`` beyond the causal
        ``dilation * (kernel_size - 1)`` (0 for a conv1d call)."""
        if self.chunk_size is None:
            return 0
        return self.padding_left - self.dilation * (self.kernel_size - 1)

    @classmethod
    def of_stream(cls, batch: int, weight: torch.Tensor, *, dilation: int, groups: int,
                  chunk_size: int, latency: int = 0) -> Signature:
        """The signature of a stream of ``weight`` (``(C_out, C_in / groups, K)``) fed
        ``batch`` rows in chunks of up to ``chunk_size`` samples, its outputs ``latency``
        samples late (see the class docstring)."""
        out_channels, in_per_group, kernel = weight.shape
        return cls(int(batch), int(in_per_group * groups), int(out_channels), int(chunk_size),
                   int(kernel), 1, dilation * (int(kernel) - 1) + int(latency), 0, dilation,
                   groups, str(weight.dtype).removeprefix("torch."), weight.device.type, False,
                   int(chunk_size))

    @classmethod
    def of(cls, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: int | tuple[int] = 1, padding: PaddingArg = 0,
           dilation: int | tuple[int] = 1, groups: int = 1) -> Signature:
        """The signature of ``F.conv1d(input, weight, bias, stride, padding, dilation, groups)``.

        Raises:
            RuntimeError: the error ``F.conv1d`` would raise for the same bad arguments.
        """
        stride_ = _single(stride, "stride")
        dilation_ = _single(dilation, "dilation")
        if input.dim() not in (2, 3):
            raise RuntimeError("Expected 2D (unbatched) or 3D (batched) input to conv1d, but got "
                               f"input of size: {list(input.shape)}")
        if weight.dim() != 3:
            raise RuntimeError("weight should have at least three dimensions" if weight.dim() < 3
                               else f"Expected 3-dimensional weight for 3-dimensional input "
                                    f"{list(input.shape)}, but got {weight.dim()}-dimensional "
                                    f"weight of size {list(weight.shape)} instead")
        if stride_ <= 0:
            raise RuntimeError("non-positive stride is not supported")
        if dilation_ <= 0:
            raise RuntimeError("dilation should be greater than zero")
        if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
            raise RuntimeError("non-positive groups is not supported")
        batch, channels, length = (1, *input.shape) if input.dim() == 2 else input.shape
        out_channels, in_per_group, kernel = weight.shape
        if out_channels < groups:
            raise RuntimeError(f"Given groups={groups}, expected weight to be at least {groups} "
                               f"at dimension 0, but got weight of size {list(weight.shape)} "
                               f"instead")
        if out_channels % groups != 0:
            raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by "
                               f"{groups} at dimension 0, but got weight of size "
                               f"{list(weight.shape)} instead")
        if channels != in_per_group * groups:
            raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, "
                               f"expected input{list(input.shape)} to have "
                               f"{in_per_group * groups} channels, but got {channels} "
                               f"channels instead")
        if bias is not None and (bias.dim() != 1 or bias.shape[0] != out_channels):
            raise RuntimeError(f"Given weight of size {list(weight.shape)}, expected bias to be "
                               f"1-dimensional with {out_channels} elements, but got bias of "
                               f"size {list(bias.shape)} instead")
        if input.dtype != weight.dtype or (bias is not None and bias.dtype != input.dtype):
            raise RuntimeError(f"Input type ({input.dtype}) and weight type ({weight.dtype}) "
                               "should be the same")
        if input.device != weight.device:
            raise RuntimeError(f"Input ({input.device}) and weight ({weight.device}) should be "
                               "on the same device")
        if length == 0:
            raise RuntimeError(f"Only zero batch or zero channel inputs are supported, but got "
                               f"input shape: {list(input.shape)}")
        if kernel <= 0:
            raise RuntimeError(f"kernel size should be greater than zero, but got "
                               f"[{int(weight.shape[0])}, {int(kernel)}]")
        left, right = resolve_padding(padding, kernel, dilation_, stride_)
        span = dilation_ * (kernel - 1) + 1
        if length + left + right < span:
            raise RuntimeError(f"Calculated padded input size per channel: "
                               f"({length + left + right})."
                               f" Kernel size: ({span}). Kernel size can't be greater than actual "
                               "input size")
        needs_grad = torch.is_grad_enabled() and (
            input.requires_grad or weight.requires_grad
            or (bias is not None and bias.requires_grad))
        return cls(int(batch), int(channels), int(out_channels), int(length), int(kernel),
                   stride_, left, right, dilation_, groups,
                   str(input.dtype).removeprefix("torch."), input.device.type, bool(needs_grad))


def call_signature(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                   stride: int | tuple[int] = 1, padding: PaddingArg = 0,
                   dilation: int | tuple[int] = 1, groups: int = 1) -> Signature:
    """The signature of the call as ``F.conv1d`` runs it in the current context: under
    autocast, that of the tensors autocast hands it (its dtype; a mix of dtypes autocast
    reconciles is valid), otherwise :meth:`Signature.of`'s.

    Raises:
        RuntimeError, TypeError: what :meth:`Signature.of` raises for the call as run.
    """
    device_type = input.device.type
    dtype = contexts.autocast_dtype(device_type)
    tensors = [t for t in (input, weight, bias) if t is not None]
    if dtype is None or len({t.device for t in tensors}) != 1:
        return Signature.of(input, weight, bias, stride, padding, dilation, groups)
    meta = [None if t is None else t.detach().to(
        device="meta", dtype=contexts.cast_dtype(t, dtype, device_type))
        for t in (input, weight, bias)]
    signature = Signature.of(*meta, stride, padding, dilation, groups)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    return dataclasses.replace(signature, device=device_type, requires_grad=needs_grad)


def signature_or_answer(input: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor | None = None, stride: int | tuple[int] = 1,
                        padding: PaddingArg = 0, dilation: int | tuple[int] = 1,
                        groups: int = 1) -> Signature | torch.Tensor:
    """The signature of a call a strategy computes itself, or ``F.conv1d``'s own answer.

    A degenerate call (no batch rows or no input channels), one :meth:`Signature.of` refuses,
    or one in a context where only ``F.conv1d`` may answer (a torch.func transform; see
    :func:`autoconv.contexts.wants_plain`) is answered by ``F.conv1d``: its result where it
    accepts the call, its exception (type and message) where it does not. So every strategy
    accepts exactly what ``F.conv1d`` accepts and fails exactly as it fails.

    Returns:
        The signature, or the tensor ``F.conv1d`` returned.

    Raises:
        Whatever ``F.conv1d`` raises for the call.
    """
    signature = None
    if not (isinstance(input, torch.Tensor) and contexts.wants_plain(input)):
        try:
            signature = Signature.of(input, weight, bias, stride, padding, dilation, groups)
        except (RuntimeError, TypeError, ValueError, IndexError):
            pass
    if signature is None or signature.is_degenerate:
        return plain.conv1d(input, weight, bias, stride, padding, dilation, groups)
    return signature
