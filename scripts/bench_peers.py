"""Peer FFT-convolution packages, each behind an adapter with ``F.conv1d``'s semantics.

Peers (installed only with the ``bench`` extra): fft-conv-pytorch (``fft_conv_pytorch.fft_conv``),
torch-fftconv (``torch_fftconv.fft_conv1d``), julius (``julius.fftconv.fft_conv1d``) and
``scipy.signal.oaconvolve`` (single channel, CPU). Each adapter either returns a zero-argument
callable computing exactly ``F.conv1d(x, w, b, ...)`` (explicit ``F.pad`` where the peer cannot
pad as asked, a flipped kernel where the peer convolves rather than correlates) or a reason
string when the peer cannot compute that call ("n/a: ...", "not installed"). The benchmark
still checks every peer's output against ``F.conv1d`` and reports "wrong" when it disagrees.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autoconv.signature import Signature

Call = Callable[[], torch.Tensor]
Adapter = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, Signature], "Call | str"]


def _import(module: str) -> object | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _padding_arg(x: torch.Tensor, sig: Signature) -> tuple[torch.Tensor | None, int]:
    """(pre-padded input or None, symmetric padding to pass to the peer)."""
    if sig.padding_left == sig.padding_right:
        return None, sig.padding_left
    return F.pad(x, (sig.padding_left, sig.padding_right)), 0


def _keyword_peer(module_name: str, function: str, *, float32_only: bool = False,
                  groups: bool = True, dilation: bool = True) -> Adapter:
    """Adapter for a peer called as ``function(x, w, b, stride=, padding=[, dilation=, groups=])``
    with symmetric int padding only (asymmetric padding is applied with ``F.pad`` first)."""
    def adapter(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                sig: Signature) -> Call | str:
        module = _import(module_name)
        if module is None:
            return "not installed"
        if float32_only and sig.dtype != "float32":
            return "n/a: computes in float32 only"
        if not groups and sig.groups != 1:
            return "n/a: no groups"
        if not dilation and sig.dilation != 1:
            return "n/a: no dilation"
        conv = getattr(module, function)
        extra = {"dilation": sig.dilation} if dilation else {}
        if groups:
            extra["groups"] = sig.groups

        def call() -> torch.Tensor:
            padded, pad = _padding_arg(x, sig)
            return conv(x if padded is None else padded, w, b, stride=sig.stride, padding=pad,
                        **extra)
        return call
    return adapter


def _scipy_oaconvolve(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                      sig: Signature) -> Call | str:
    signal = _import("scipy.signal")
    if signal is None:
        return "not installed"
    if sig.device != "cpu":
        return "n/a: CPU only"
    if sig.in_channels != 1 or sig.out_channels != 1:
        return "n/a: single channel only"
    if sig.dilation != 1:
        return "n/a: no dilation"
    import numpy as np

    oaconvolve = signal.oaconvolve  # type: ignore[attr-defined]
    full = sig.padding_left == sig.padding_right == sig.kernel_size - 1

    def call() -> torch.Tensor:
        signals = x.numpy()[:, 0, :]
        kernel = w.numpy()[0, :, ::-1]  # correlation = convolution with the flipped kernel
        if full:
            out = oaconvolve(signals, kernel, mode="full", axes=-1)
        else:
            padded = np.pad(signals, ((0, 0), (sig.padding_left, sig.padding_right)))
            out = oaconvolve(padded, kernel, mode="valid", axes=-1)
        result = torch.from_numpy(np.ascontiguousarray(out[:, None, ::sig.stride]))
        return result if b is None else result + b.view(1, -1, 1)
    return call


@dataclass(frozen=True)
class Peer:
    """A peer package: its display name and its adapter."""

    name: str
    adapter: Adapter

    def prepare(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                sig: Signature) -> Call | str:
        """A callable computing ``F.conv1d`` for this call, or why the peer cannot."""
        return self.adapter(x, w, b, sig)


#: The peers, in table order.
PEERS: tuple[Peer, ...] = (
    Peer("fft-conv-pytorch", _keyword_peer("fft_conv_pytorch", "fft_conv", float32_only=True)),
    Peer("torch-fftconv", _keyword_peer("torch_fftconv", "fft_conv1d")),
    Peer("julius", _keyword_peer("julius.fftconv", "fft_conv1d", groups=False, dilation=False)),
    Peer("scipy.oaconvolve", _scipy_oaconvolve),
)
