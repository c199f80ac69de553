"""Fast FFT sizes, the plans a cost model reads, and the parameter grids."""

from __future__ import annotations

import json

import pytest
import torch

from autoconv.signature import Signature
from autoconv.strategies import (
    block_size_grid,
    default_block_size,
    fast_size,
    fast_sizes,
    fft_plan,
    get,
    is_fast_size,
    names,
    overlap_add_plan,
)


def brute_fast_size(n: int) -> int:
    m = max(n, 1)
    while not is_fast_size(m):
        m += 1
    return m


@pytest.mark.parametrize("n", [*range(300), 1021, 4095, 4097, 16001, 96000 + 8190, 10**6 + 1])
def test_fast_size_is_smallest_7_smooth(n: int) -> None:
    assert fast_size(n) == brute_fast_size(n)


def test_fast_size_is_not_blindly_a_power_of_two() -> None:
    assert fast_size(4097) == 4116
    assert fast_size(16001) < 32768


def test_fast_sizes_lists_the_smooth_numbers_in_range() -> None:
    assert fast_sizes(10, 30) == [10, 12, 14, 15, 16, 18, 20, 21, 24, 25, 27, 28, 30]


def test_coarse_fast_sizes_are_five_per_octave_fast_and_at_most_a_fifth_long() -> None:
    from autoconv.strategies.fast_sizes import coarse_fast_size

    sizes = [coarse_fast_size(n) for n in range(1, 20_000)]
    for n, size in enumerate(sizes, start=1):
        assert n <= size <= max(1.2 * n, fast_size(n)) and is_fast_size(size)
    assert sorted({s for s in sizes if 1024 <= s < 2048}) == [1024, 1152, 1280, 1536, 1792]
    assert sizes[:9] == [fast_size(n) for n in range(1, 10)]


def sig(length: int, kernel: int, stride: int = 1, padding=0, dilation: int = 1) -> Signature:
    return Signature.of(torch.empty(1, 1, length), torch.empty(1, 1, kernel), None, stride,
                        padding, dilation)


def test_fft_plan_is_no_longer_than_the_output_needs() -> None:
    plan = fft_plan(sig(4096, 65, padding="same"))
    assert plan.fft_length == 4200  # 4096 + 64 = 4160 needed; 4200 = 2^3 * 3 * 5^2 * 7
    assert plan.frames == 1 and plan.step == plan.output_length == 4096  # one frame: all
    assert fft_plan(sig(16000, 1023)).fft_length == 16000


def test_fft_plan_polyphase_divides_the_length() -> None:
    plan = fft_plan(sig(1000, 9, stride=4))
    assert plan.phases == 4 and plan.taps == 3
    assert plan.output_length == (1000 - 9) // 4 + 1
    assert plan.fft_length == fast_size(plan.output_length + plan.taps - 1)


def test_overlap_add_plan_counts_frames() -> None:
    plan = overlap_add_plan(sig(4096, 65), 512)
    assert (plan.fft_length, plan.step, plan.frames, plan.bins) == (512, 448, 9, 257)
    assert plan.input_length == 8 * 448 + 512


def test_block_size_grid_is_a_few_fast_sizes_between_kernel_and_signal() -> None:
    s = sig(4096, 65)
    grid = block_size_grid(s)
    sizes = [p["block_size"] for p in grid]
    # 2^k and 3 * 2^(k-1) from twice the 65 taps (130) up; the 6 smallest; the whole signal
    # (4096) is the fft strategy's single block
    assert sizes == [192, 256, 384, 512, 768, 1024]
    assert all(is_fast_size(n) for n in sizes)
    assert sizes[0] >= 2 * 65 and sizes[-1] < fft_plan(s).fft_length
    assert json.loads(json.dumps(grid)) == grid
    assert default_block_size(s) == 512  # 4 x 65 taps, rounded up to a power of two


def test_block_size_grid_for_a_short_signal_is_one_block() -> None:
    s = sig(40, 33)
    assert block_size_grid(s) == [{"block_size": fft_plan(s).fft_length}]


def test_registry_order_and_grids_are_json() -> None:
    assert names()[:3] == ["direct", "fft", "overlap_add"]
    s = sig(1000, 31, stride=2, dilation=3)
    for name in names():
        grid = get(name).param_grid(s)
        assert grid and json.loads(json.dumps(grid)) == grid
    assert all(get(name).supports(s) for name in names()[:3])  # the others serve some layers


def test_block_size_grid_skips_blocks_too_short_to_pay_off() -> None:
    from autoconv.strategies.overlap_add_conv import MIN_BLOCK

    s = sig(20000, 2, stride=2)  # one tap per phase: blocks of 2 would be "twice the kernel"
    sizes = [p["block_size"] for p in block_size_grid(s)]
    assert sizes[0] == MIN_BLOCK and default_block_size(s) == MIN_BLOCK
