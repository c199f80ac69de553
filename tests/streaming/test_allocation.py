"""The partitioned streams (uniform and non-uniform, with a latency too) allocate nothing per
chunk once they run (with ``out=``): every allocation the profiler sees in a steady stream is
torch's FFT's own scratch."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from autoconv.strategies.streaming.latency import BLOCK

from .helpers import partitions, schedule, variant


def _allocations_outside_fft(prof) -> list[list[str]]:
    found = []
    for event in prof.events():
        if event.cpu_memory_usage > 0:
            chain, parent = [], event
            while parent is not None:
                chain.append(parent.name)
                parent = parent.cpu_parent
            if not any("fft" in name for name in chain):
                found.append(chain)
    return found


@pytest.mark.parametrize("groups,in_channels,strategy,params_of,latency", [
    (2, 2, "partitioned", partitions(1), 0), (2, 2, "partitioned", partitions(4), 0),
    (1, 3, "partitioned", partitions(2), 0), (2, 2, "nonuniform", schedule(1, 2, 8), 0),
    (1, 3, "nonuniform", schedule(1, 4, 4), 0),
    (2, 2, "partitioned", lambda chunk: {BLOCK: 4 * chunk, "partition": 4 * chunk}, 40)],
    ids=["depthwise", "depthwise_x4", "dense_x2", "nonuniform_depthwise", "nonuniform_dense",
         "latency_block_x4"])
def test_no_allocation_per_chunk_in_the_partitioned_paths(groups, in_channels, strategy,
                                                          params_of, latency) -> None:
    weight, bias = torch.randn(4, in_channels // groups, 300), torch.randn(4)
    stream = variant(weight, bias, strategy, params_of, chunk_size=8, groups=groups,
                     latency=latency)
    x, out = torch.randn(2, in_channels, 8), torch.empty(2, 4, 8)
    short = out[..., :3]
    with torch.inference_mode():
        for _ in range(8):
            stream.stream(x, out=out)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            for _ in range(8):
                stream.stream(x, out=out)
                stream.stream(x[..., :3], out=short)  # a shorter chunk: a piece per block
    assert _allocations_outside_fft(prof) == []
