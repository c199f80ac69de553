"""Fewer multiply-adds on dense layers: is Winograd worth a strategy on this machine?

Dense convolutions (wav2vec2's feature encoder, Whisper's stem, TDNNs, HiFi-GAN's blocks) run
through ``F.conv1d`` at about this CPU's matrix-multiply rate (``benchmarks/layers-cpu.md``):
no layout or lowering of the same multiply-adds beats it. Only an algorithm with fewer
multiply-adds can. Winograd's (Toom-Cook's) minimal filtering ``F(m, r)`` computes ``m``
outputs of an ``r``-tap filter with ``m + r - 1`` multiplies instead of ``m * r``: across
channels, ``m + r - 1`` matrix multiplies of ``(O, C) x (C, L / m)`` replace the direct sum's
``r`` of ``(O, C) x (C, L)``, at the price of transforming the input, the weight and the
output. A stride ``s`` is handled by the polyphase split (``s`` phases as channels, filters of
``ceil(K / s)`` taps), which leaves fewer multiplies to save.

For each layer, timed interleaved, medians: ``F.conv1d``; Winograd ``F(m, r)`` in torch's
eager operators (transforms as small matrix multiplies, processed in chunks of about 2 MiB of
transformed input, written straight into the contiguous output); and the Winograd matrix
multiplies alone, on preallocated buffers, which no implementation of the transforms can beat:
if they alone are not clearly faster than ``F.conv1d``, Winograd cannot win that layer here.
Also each Winograd output's largest error against float64, over the output's largest value.

No strategy was added from this probe (issue 29: a strategy that never wins is not added);
``benchmarks/fewer-macs-cpu.md`` holds its output and what it means.

Usage: python scripts/probe_fewer_macs.py [--repeats N] [--out benchmarks/fewer-macs-cpu.md]
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from benchlib import (
    format_seconds,
    machine_header,
    markdown_table,
    publish,
    time_interleaved,
    warm_up,
)

from autoconv.catalogue import ordinary
from autoconv.catalogue.workload import Workload

#: Dense layers of the ordinary catalogue: strided (wav2vec2, Whisper, EnCodec) and not.
LAYERS = ("wav2vec2_fe1", "whisper_base_conv2", "encodec_down_k8", "hifigan_k7", "fcn_k5")
#: The tile sizes tried, and the interpolation points (the last one is infinity).
TILES = (2, 4)
POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 1 / 3, -1 / 3)
CHUNK_BYTES = 2 << 20
LEGEND = ("multiplies: Winograd's multiply-adds over the direct sum's (polyphase taps for a "
          "stride); winograd: the whole call, eager operators; GEMMs alone: its matrix "
          "multiplies only (a bound); error: largest error against float64 over the largest "
          "output. Ratios are F.conv1d's time over the candidate's.")


def toom_cook(m: int, r: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """``(A^T, G, B^T)`` of ``F(m, r)``: ``y = A^T [(G g) * (B^T d)]`` correlates a tile ``d``
    of ``m + r - 1`` inputs with the ``r`` taps ``g``. Built in float64 from Vandermonde
    matrices at :data:`POINTS` (transposed Toom-Cook), then cast."""
    n = m + r - 1

    def vandermonde(columns: int) -> torch.Tensor:  # the last row: the point at infinity
        return torch.tensor([[a ** k for k in range(columns)] for a in POINTS[:n - 1]]
                            + [[0.0] * (columns - 1) + [1.0]], dtype=torch.float64)

    a_t, g, b_t = vandermonde(m).T, vandermonde(r), torch.linalg.inv(vandermonde(n)).T
    return tuple(t.contiguous().to(dtype) for t in (a_t, g, b_t))


def polyphase(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int
              ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The padded input and weight of a stride-1 convolution equal to the strided one
    (phases as channels), and its output length."""
    out_len = (x.shape[-1] + 2 * padding - w.shape[-1]) // stride + 1
    x = F.pad(x, (padding, padding))
    if stride == 1:
        return x, w, out_len
    o, c, k = w.shape
    taps = -(-k // stride)
    w = F.pad(w, (0, taps * stride - k)).view(o, c, taps, stride).transpose(2, 3)
    frames = out_len + taps - 1
    x = F.pad(x, (0, max(0, frames * stride - x.shape[-1])))[..., :frames * stride]
    x = x.reshape(x.shape[0], c, frames, stride).transpose(2, 3)
    return x.reshape(x.shape[0], c * stride, frames), w.reshape(o, c * stride, taps), out_len


def winograd(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, m: int
             ) -> torch.Tensor:
    """``F.conv1d(x, w, None, stride, padding)`` by ``F(m, r)`` in eager torch operators."""
    x, w, out_len = polyphase(x, w, stride, padding)
    (batch, c, _), (o, _, r) = x.shape, w.shape
    n, tiles = m + r - 1, -(-out_len // m)
    x = F.pad(x, (0, tiles * m + r - 1 - x.shape[-1]))
    a_t, g, b_t = toom_cook(m, r, x.dtype)
    u = (g @ w.permute(2, 0, 1).reshape(r, o * c)).view(n, o, c)
    out = x.new_empty(batch, o, out_len)
    chunk = max(8, CHUNK_BYTES // (n * c * x.element_size()))
    rows = max(1, chunk // tiles)  # whole rows of tiles per chunk, when they fit
    chunk = min(chunk, tiles)
    for b0 in range(0, batch, rows):
        b1 = min(batch, b0 + rows)
        for t0 in range(0, tiles, chunk):
            t1 = min(tiles, t0 + chunk)
            cols = x[b0:b1, :, t0 * m:t1 * m + r - 1].unfold(2, n, m).transpose(0, 1)
            v = (b_t @ cols.reshape(-1, n).T).view(n, c, -1)
            y = (torch.bmm(u, v).view(n, -1).T @ a_t.T).view(o, b1 - b0, -1)
            l0, l1 = t0 * m, min(out_len, t1 * m)
            out[b0:b1, :, l0:l1].transpose(0, 1).copy_(y[..., :l1 - l0])
    return out


def gemms_alone(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, m: int
                ) -> Callable[[], torch.Tensor]:
    """A call running only the matrix multiplies of :func:`winograd` (random operands of the
    right shapes, preallocated): a bound no implementation of the transforms beats."""
    x, w, out_len = polyphase(x, w, stride, padding)
    (batch, c, _), (o, _, r) = x.shape, w.shape
    n, tiles = m + r - 1, -(-out_len // m)
    u, v = torch.randn(n, o, c), torch.randn(n, c, batch * tiles)
    product = torch.empty(n, o, batch * tiles)
    return lambda: torch.bmm(u, v, out=product)


def error(out: torch.Tensor, exact: torch.Tensor) -> float:
    """The largest error against ``exact``, over ``exact``'s largest value."""
    return ((out.double() - exact).abs().max() / exact.abs().max()).item()


def probe(workload: Workload, repeats: int) -> list[str]:
    """One report row: ``workload``'s times, multiply ratios and errors for each tile."""
    s = workload.signature()
    x, w, _ = workload.tensors()
    w = w / math.sqrt(w.shape[1] * w.shape[2])
    exact = F.conv1d(x.double(), w.double(), None, s.stride, s.padding_left)
    calls = {"F.conv1d": lambda: F.conv1d(x, w, None, s.stride, s.padding_left)}
    errors = {}
    for m in TILES:
        calls[f"winograd m={m}"] = lambda m=m: winograd(x, w, s.stride, s.padding_left, m)
        calls[f"GEMMs alone m={m}"] = gemms_alone(x, w, s.stride, s.padding_left, m)
        errors[m] = error(winograd(x, w, s.stride, s.padding_left, m), exact)
    warmups = {name: warm_up(fn, "cpu", 5.0) for name, fn in calls.items()}
    medians = {name: t.median for name, t in time_interleaved(
        calls, warmups, device="cpu", repeats=repeats, budget_s=3.0).items()}
    base = medians["F.conv1d"]

    def against_base(name: str) -> str:
        return f"{format_seconds(medians[name])} ({base / medians[name]:.2f}x)"

    taps = -(-s.kernel_size // s.stride)
    cells = [workload.name, workload.summary(), format_seconds(base)]
    for m in TILES:
        multiplies = (m + taps - 1) * s.stride / (m * s.kernel_size)
        cells += [f"{multiplies:.2f}", against_base(f"winograd m={m}"),
                  against_base(f"GEMMs alone m={m}"), f"{errors[m]:.0e}"]
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="most samples per candidate")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    headers = ["layer", "shape", "F.conv1d"]
    for m in TILES:
        headers += [f"multiplies m={m}", f"winograd m={m}", f"GEMMs alone m={m}",
                    f"error m={m}"]
    rows = [probe(workload, args.repeats) for workload in ordinary.select(list(LAYERS))]
    report = "\n".join([
        "# Fewer multiply-adds on dense layers: Winograd F(m, r) against F.conv1d", "",
        machine_header("cpu"), f"- 1-min load average at start: {load:.2f}", "",
        markdown_table(headers, rows), "", LEGEND])
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
