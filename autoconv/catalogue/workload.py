"""A workload: one named ``F.conv1d`` call, as data, with where it comes from.

The suite (:mod:`~autoconv.catalogue.suite`) and the ordinary layers
(:mod:`~autoconv.catalogue.ordinary`) are lists of them. A workload is plain data: building
tensors (:meth:`Workload.tensors`) is explicit, and its :class:`~autoconv.signature.Signature`
is computed without allocating anything; :meth:`Workload.of` names a layer of an architecture
(:mod:`~autoconv.catalogue.architectures`) as a workload.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from autoconv.signature import Signature, resolve_padding
from autoconv.tuning.candidates import ConvInputs

Shape3 = tuple[int, int, int]


@dataclass(frozen=True)
class Workload:
    """One named ``F.conv1d`` call with the dimensions of the model it comes from.

    Attributes:
        name: unique identifier (``[a-z0-9_]``), used on command lines and in result tables.
        description: what the call computes, in a few words.
        source: the real model or pipeline the dimensions are taken from.
        input_shape: ``(batch, in_channels, length)``.
        weight_shape: ``(out_channels, in_channels // groups, kernel_size)``.
        stride, padding, dilation, groups: ``F.conv1d``'s arguments (padding may be
            ``'same'`` or ``'valid'``).
        bias: whether the call adds a bias.
        dtype: torch dtype name, e.g. ``"float32"``.
        quick: part of the quick subset (``--quick`` in the benchmarks).
        tags: categories, e.g. ``("audio", "single_channel")``.
    """

    name: str
    description: str
    source: str
    input_shape: Shape3
    weight_shape: Shape3
    stride: int = 1
    padding: int | str = 0
    dilation: int = 1
    groups: int = 1
    bias: bool = False
    dtype: str = "float32"
    quick: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, name: str, signature: Signature, *, description: str, source: str,
           bias: bool = False, quick: bool = False, tags: tuple[str, ...] = ()) -> Workload:
        """The call of ``signature`` as a workload called ``name``.

        Raises:
            ValueError: the signature's padding is asymmetric and not ``'same'``'s (no
                ``F.conv1d`` call has it).
        """
        s = signature
        padding: int | str = s.padding_left
        if s.padding_left != s.padding_right:
            if s.stride != 1 or resolve_padding("same", s.kernel_size, s.dilation, 1) != (
                    s.padding_left, s.padding_right):
                raise ValueError(f"workload {name!r}: padding {s.padding_left}, "
                                 f"{s.padding_right} is no F.conv1d call's")
            padding = "same"
        return cls(name, description, source, (s.batch, s.in_channels, s.length),
                   (s.out_channels, s.in_channels // s.groups, s.kernel_size), stride=s.stride,
                   padding=padding, dilation=s.dilation, groups=s.groups, bias=bias,
                   dtype=s.dtype, quick=quick, tags=tags)

    @property
    def torch_dtype(self) -> torch.dtype:
        """The workload's dtype as a ``torch.dtype``."""
        dtype = getattr(torch, self.dtype, None)
        if isinstance(dtype, torch.dtype):
            return dtype
        raise ValueError(f"workload {self.name!r}: unknown dtype {self.dtype!r}")

    def conv_kwargs(self) -> dict[str, Any]:
        """``stride``, ``padding``, ``dilation`` and ``groups`` as keyword arguments."""
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                "groups": self.groups}

    def tensors(self, device: str | torch.device = "cpu", seed: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Build ``(input, weight, bias)`` for this workload, deterministic in ``seed``.

        The input is standard normal; the weight is scaled by ``1/sqrt(fan_in)`` (as
        ``nn.Conv1d``'s initialisation) so that outputs stay of order one whatever the kernel
        size; ``bias`` is ``None`` unless the workload has one.
        """
        inputs = ConvInputs.random(self.signature(str(device)), torch.device(device),
                                   bias=self.bias, seed=seed)
        return inputs.input, inputs.weight, inputs.bias

    def signature(self, device: str = "cpu") -> Signature:
        """The :class:`Signature` of this call (computed from the shapes, allocates nothing)."""
        batch, channels, length = self.input_shape
        out_channels, _, kernel = self.weight_shape
        left, right = resolve_padding(self.padding, kernel, self.dilation, self.stride)
        return Signature(batch, channels, out_channels, length, kernel, self.stride, left, right,
                         self.dilation, self.groups, self.dtype, torch.device(device).type)

    @property
    def output_shape(self) -> Shape3:
        """Shape of ``F.conv1d``'s result."""
        sig = self.signature()
        return sig.batch, sig.out_channels, sig.output_length

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the direct convolution (a size measure)."""
        batch, out_channels, out_length = self.output_shape
        _, in_per_group, kernel = self.weight_shape
        return batch * out_channels * out_length * in_per_group * kernel

    def summary(self) -> str:
        """Compact shape string, e.g. ``4x64->64 L4096 K65 p32``."""
        batch, channels, length = self.input_shape
        out_channels, _, kernel = self.weight_shape
        parts = [f"{batch}x{channels}->{out_channels}", f"L{length}", f"K{kernel}"]
        for label, value, default in (("s", self.stride, 1), ("p", self.padding, 0),
                                      ("d", self.dilation, 1), ("g", self.groups, 1)):
            if value != default:
                parts.append(f"{label}{value}")
        if self.bias:
            parts.append("bias")
        if self.dtype != "float32":
            parts.append(self.dtype)
        return " ".join(parts)


def find(workloads: Sequence[Workload], name: str) -> Workload:
    """The workload called ``name`` among ``workloads``.

    Raises:
        KeyError: no such workload (the message lists the known names).
    """
    for workload in workloads:
        if workload.name == name:
            return workload
    known = ", ".join(w.name for w in workloads)
    raise KeyError(f"unknown workload {name!r}; known: {known}")


def choose(workloads: Sequence[Workload], only: Sequence[str] | None = None,
           quick: bool = False) -> list[Workload]:
    """Workloads by name (``only``, in the given order), the quick ones, or all of them.

    Raises:
        KeyError: a name in ``only`` is not among ``workloads``.
    """
    if only:
        return [find(workloads, name) for name in only]
    return [w for w in workloads if w.quick] if quick else list(workloads)
