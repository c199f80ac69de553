"""The Winograd probe (scripts/probe_fewer_macs.py): its Toom-Cook matrices satisfy the
minimal-filtering identity, and its convolution is F.conv1d's, strided or not (its timings
are never asserted)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from probe_fewer_macs import toom_cook, winograd


@pytest.mark.parametrize(("m", "r"), [(2, 2), (2, 3), (4, 3), (4, 5), (4, 7), (6, 3)])
def test_toom_cook_matrices_correlate_a_tile_with_the_taps(m: int, r: int) -> None:
    a_t, g, b_t = toom_cook(m, r, torch.float64)
    tile, taps = torch.randn(m + r - 1, dtype=torch.float64), torch.randn(r, dtype=torch.float64)
    expected = torch.stack([tile[i:i + r] @ taps for i in range(m)])
    assert torch.allclose(a_t @ ((g @ taps) * (b_t @ tile)), expected, atol=1e-10)


@pytest.mark.parametrize(("stride", "padding", "kernel", "m"),
                         [(1, 0, 3, 2), (1, 2, 5, 4), (1, 3, 7, 4), (2, 0, 3, 4), (2, 1, 3, 2),
                          (4, 0, 8, 4), (5, 0, 10, 2)])
def test_winograd_returns_what_f_conv1d_returns(stride: int, padding: int, kernel: int,
                                                 m: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 6, 101, dtype=torch.float64)
    w = torch.randn(5, 6, kernel, dtype=torch.float64)
    out = winograd(x, w, stride, padding, m)
    expected = F.conv1d(x, w, None, stride, padding)
    assert out.shape == expected.shape and out.is_contiguous()
    assert torch.allclose(out, expected, atol=1e-9)


@pytest.mark.parametrize("chunk_bytes", [1, 8 * 6 * 8 * 26 * 2])  # 8 tiles; 2 rows of 26
def test_winograd_in_chunks_of_tiles_and_of_rows(monkeypatch: pytest.MonkeyPatch,
                                                 chunk_bytes: int) -> None:
    import probe_fewer_macs

    monkeypatch.setattr(probe_fewer_macs, "CHUNK_BYTES", chunk_bytes)
    torch.manual_seed(0)
    x = torch.randn(3, 6, 101, dtype=torch.float64)
    w = torch.randn(5, 6, 5, dtype=torch.float64)  # F(4, 5): 8 points, 26 tiles a row
    assert torch.allclose(winograd(x, w, 1, 2, 4), F.conv1d(x, w, None, 1, 2), atol=1e-9)
