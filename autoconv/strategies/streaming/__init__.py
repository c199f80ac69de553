"""Streaming strategies: stateful engines that compute a causal conv1d chunk by chunk.

``stateful_direct`` keeps the kernel's history and convolves it with each chunk through
``F.conv1d`` (or, time-major, as a channels-last image); ``partitioned`` is uniformly
partitioned overlap-save with a tuned partition length; ``nonuniform`` cuts long kernels in
partitions growing from the chunk size (its schedule is tuned: first partition,
growth, largest partition). Each registers latency-aware (:mod:`.latency`): a stream that
allows a latency also tries it on blocks larger than the chunk. Registry order
(stateful_direct, partitioned, nonuniform) is the tie-break order. Each registry entry
(:class:`StreamStrategy`) carries everything else autoconv knows about its strategy;
``autoconv.Conv1dStream`` (``autoconv/streaming/``) is the object users hold.
"""

from autoconv.strategies.streaming.crossfade import RAMPS, Crossfade
from autoconv.strategies.streaming.direct import (
    StatefulDirect,
    TimeMajorDirect,
    build_direct,
    check_direct_params,
    direct_flops,
    direct_layouts,
)
from autoconv.strategies.streaming.latency import Delayed
from autoconv.strategies.streaming.nonuniform import NonUniformPartitioned, build_nonuniform
from autoconv.strategies.streaming.nonuniform_plan import (
    NonUniformPlan,
    check_nonuniform_params,
    nonuniform_flops,
    nonuniform_grid,
    nonuniform_period,
    supports_nonuniform,
)
from autoconv.strategies.streaming.partition_plan import (
    PartitionPlan,
    check_partitioned_params,
    partition_grid,
    partitioned_flops,
    partitioned_period,
    supports_partitioned,
)
from autoconv.strategies.streaming.partitioned import UniformPartitioned, build_partitioned
from autoconv.strategies.streaming.registry import (
    StreamEngine,
    StreamStrategy,
    all_stream_strategies,
    get,
    register,
    stream_reference,
)

register(StreamStrategy("stateful_direct", build_direct, direct_flops, param_grid=direct_layouts,
                        check=check_direct_params, reference=True))
register(StreamStrategy("partitioned", build_partitioned, partitioned_flops,
                        param_grid=partition_grid, supports=supports_partitioned,
                        check=check_partitioned_params, period=partitioned_period,
                        size_params=frozenset({"partition"})))
register(StreamStrategy("nonuniform", build_nonuniform, nonuniform_flops,
                        param_grid=nonuniform_grid, supports=supports_nonuniform,
                        check=check_nonuniform_params, period=nonuniform_period,
                        size_params=frozenset({"first_partition", "partition_growth",
                                               "largest_partition"})))

__all__ = [
    "RAMPS", "Crossfade", "Delayed", "NonUniformPartitioned", "NonUniformPlan", "PartitionPlan",
    "StatefulDirect", "StreamEngine", "StreamStrategy", "TimeMajorDirect", "UniformPartitioned",
    "all_stream_strategies", "get", "register", "stream_reference",
]
