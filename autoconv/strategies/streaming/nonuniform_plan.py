"""The plan of a non-uniformly partitioned stream: which taps each partition size covers; the
parameter grid, the checks of stored parameters, the period and the operation count.

The kernel, flipped and dilated (``L`` taps, as in :mod:`.partition_plan`), is cut into a
*head*, its first ``2 * P_1`` taps, and *stages* of partitions growing by
``partition_growth`` up to ``largest_partition``: ``P_1 = first_partition``,
``P_2 = partition_growth * P_1``, ... (never above ``largest_partition``; sizes are
power-of-two multiples of the chunk size). A stage of partition ``P`` starts at tap ``2P``:
its outputs for a block of ``P`` samples need no input later than the end of the block two
blocks before, so that the work of one output block (a transform of ``2P`` samples, the
products of its partitions, the inverse transform) is spread over the ``P`` samples of the
block before (:mod:`.stage_slots`), and no chunk waits for a whole stage. So the head covers taps
``[0, 2 P_1)``, stage ``s`` covers ``[2 P_s, 2 P_{s+1})`` (``2 (growth - 1)`` partitions)
and the stage of the largest partition covers the rest.

The head is one partition: each chunk, the last ``head_size >= 2 P_1 + chunk - 1`` input
samples are transformed, multiplied by the head's spectrum and transformed back, which
gives the chunk's outputs at once. A chunk then costs that small transform pair and a
share of each stage's work: per sample, a stage of partition ``P`` does ``O(log P)``
transform work and as many products as it has partitions, where uniform partitioning at the
chunk size does ``L / chunk`` products per sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from autoconv.signature import Signature
from autoconv.strategies.fast_sizes import fast_size
from autoconv.strategies.registry import check_int, check_names
from autoconv.strategies.streaming.stage_slots import OP_COST

#: The parameters: the first stage's partition, the growth between stages, the largest
#: partition (partitions in samples).
PARAMS = frozenset({"first_partition", "partition_growth", "largest_partition"})
#: Growth factors a stored schedule may use.
GROWTHS = (2, 4, 8)
#: A first partition of more chunks than this is refused as unreasonable.
MAX_FIRST_MULTIPLE = 64
#: The largest partition spans at most this many chunks: one timed sample streams a period.
MAX_PERIOD = 1024
#: The largest partition never exceeds this many samples.
MAX_LARGEST = 65536
#: Kernel spectra, spectra of past blocks and buffers larger than this are never built.
MAX_SPECTRA_BYTES = 2 * 2**30
#: Below this many chunks of taps, no schedule is offered (uniform partitioning does as well).
MIN_SPAN_CHUNKS = 64
#: The first partition of the schedules timed: the power-of-two multiples of the chunk size
#: in this range (one chunk when the chunk is longer): a longer head costs a larger
#: transform every chunk, a shorter one makes the first stage work every chunk or two.
FIRST_RANGE = (129, 1024)
#: Schedules timed for each first partition: (growth, largest); the first of them for every
#: first partition, the others for the middle one.
SHAPES = ((8, 16384), (4, 16384), (8, 32768), (4, 8192))
#: Floating-point operations one torch operation is worth on a CPU (a few microseconds of
#: dispatch): the head runs a few per chunk, every stage a few per block.
OP_FLOPS = OP_COST
_COMPLEX_BYTES = {"float32": 8, "float64": 16}


@dataclass(frozen=True)
class Stage:
    """Partitions of one size: taps ``[offset, offset + count * partition)`` (``offset`` is
    ``2 * partition``)."""

    partition: int
    offset: int
    count: int

    @property
    def fft_size(self) -> int:
        """Transform length: a block and the one before."""
        return 2 * self.partition

    @property
    def bins(self) -> int:
        return self.partition + 1


@dataclass(frozen=True)
class NonUniformPlan:
    """Sizes of one non-uniformly partitioned stream.

    Attributes:
        chunk: the chunk size.
        span: ``L``, taps of the dilated kernel.
        head_taps: taps the head covers (``min(L, 2 P_1)``).
        head_size: the head's transform length (a fast size, at least
            ``head_taps + chunk - 1``).
        stages: the later partitions, smallest first (none for a short kernel).
    """

    chunk: int
    span: int
    head_taps: int
    head_size: int
    stages: tuple[Stage, ...]

    @classmethod
    def of(cls, span: int, chunk: int, first: int, growth: int, largest: int
           ) -> NonUniformPlan:
        """The plan of a kernel of ``span`` taps (see the module docstring)."""
        partition, offset = first, 2 * first
        stages: list[Stage] = []
        while offset < span:
            following = min(growth * partition, largest)
            if following == partition:  # the largest partition covers the rest
                stages.append(Stage(partition, offset, -(-(span - offset) // partition)))
                break
            count = min(2 * following - offset, span - offset + partition - 1) // partition
            stages.append(Stage(partition, offset, count))
            offset, partition = 2 * following, following
        head_taps = min(span, 2 * first)
        return cls(chunk, span, head_taps, fast_size(head_taps + chunk - 1), tuple(stages))

    @classmethod
    def for_signature(cls, signature: Signature, params: Mapping[str, Any]) -> NonUniformPlan:
        """The plan of a stream signature with ``params``."""
        return _plan(signature.span, signature.length, *schedule_of(signature.length, params))

    @property
    def largest(self) -> int:
        """The longest partition in use (the chunk size without stages)."""
        return self.stages[-1].partition if self.stages else self.chunk

    @property
    def period(self) -> int:
        """Chunks after which the work repeats: a block of the largest partition."""
        return self.largest // self.chunk


def schedule_of(chunk: int, params: Mapping[str, Any]) -> tuple[int, int, int]:
    """``(first, growth, largest)`` partitions of ``params`` (:data:`PARAMS`), those absent
    (or None) by default: a first partition of 4 chunks, a growth of 4, the largest
    partition 16 times the first."""
    first = int(params.get("first_partition") or 4 * chunk)
    return (first, int(params.get("partition_growth") or 4),
            int(params.get("largest_partition") or 16 * first))


@lru_cache(maxsize=256)
def _plan(span: int, chunk: int, first: int, growth: int, largest: int) -> NonUniformPlan:
    return NonUniformPlan.of(span, chunk, first, growth, largest)


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def spectra_bytes(signature: Signature, plan: NonUniformPlan) -> int:
    """Bytes of the kernel spectra, the spectra of past blocks and the buffers."""
    s = signature
    complex_bytes = _COMPLEX_BYTES.get(s.dtype, 16)
    pairs = s.out_channels * (s.in_channels // s.groups)
    rows = s.batch * (s.in_channels + s.out_channels)
    bins = plan.head_size // 2 + 1
    total = (pairs + rows) * bins
    for stage in plan.stages:
        total += (stage.count * pairs + 2 * stage.count * s.batch * s.in_channels
                  + 2 * rows) * stage.bins
    # the input history and the outputs ahead, real samples (half a complex each)
    total += 4 * (plan.largest + plan.head_size) * rows
    return total * complex_bytes


def supports_nonuniform(signature: Signature) -> bool:
    """Real float32 and float64 streams on the CPU (on CUDA each chunk must do the same work,
    so that one captured graph replays the stream)."""
    return (signature.dtype in _COMPLEX_BYTES and signature.chunk_size is not None
            and signature.device != "cuda")


def _firsts(chunk: int) -> list[int]:
    low, high = FIRST_RANGE
    firsts = [chunk << k for k in range(MAX_FIRST_MULTIPLE.bit_length())
              if low <= chunk << k <= high]
    return firsts or [chunk]


def nonuniform_grid(signature: Signature) -> list[dict[str, Any]]:
    """For a CPU stream whose kernel spans at least :data:`MIN_SPAN_CHUNKS` chunks: each
    first partition of :data:`FIRST_RANGE` with the first of :data:`SHAPES`, the middle
    one with each of them (the largest partition the first times the power of two nearest
    below it, within :data:`MAX_PERIOD` chunks); those whose
    plan has two stages or more and fits in memory, one of each plan."""
    chunk, span = signature.length, signature.span
    if span < MIN_SPAN_CHUNKS * chunk or not supports_nonuniform(signature):
        return []
    firsts = _firsts(chunk)
    middle = firsts[len(firsts) // 2]
    schedules = [(first, *SHAPES[0]) for first in firsts]
    schedules += [(middle, *shape) for shape in SHAPES[1:]]
    grid, plans = [], set()
    for first, growth, largest in schedules:
        largest = first << max(0, (min(largest, MAX_PERIOD * chunk, MAX_LARGEST) // first
                                   ).bit_length() - 1)
        params = {"first_partition": first, "partition_growth": growth,
                  "largest_partition": largest}
        try:
            check_nonuniform_params(signature, params)
        except ValueError:
            continue
        plan = NonUniformPlan.for_signature(signature, params)
        if len(plan.stages) >= 2 and plan not in plans:
            plans.add(plan)
            grid.append(params)
    return grid


def check_nonuniform_params(signature: Signature, params: Mapping[str, Any]) -> None:
    """``first_partition``: a power-of-two multiple of the chunk size, at most
    :data:`MAX_FIRST_MULTIPLE` chunks; ``partition_growth``: one of :data:`GROWTHS`;
    ``largest_partition``: the first times a power of two, at most :data:`MAX_LARGEST` samples and
    :data:`MAX_PERIOD` chunks; a CPU stream whose spectra fit in memory.

    Raises:
        ValueError, TypeError: any other parameter or value.
    """
    check_names(params, PARAMS, "nonuniform")
    chunk = signature.length
    check_int(params, "first_partition", chunk, chunk * MAX_FIRST_MULTIPLE)
    check_int(params, "partition_growth", min(GROWTHS), max(GROWTHS))
    check_int(params, "largest_partition", chunk, MAX_LARGEST)
    first, growth, largest = schedule_of(chunk, params)
    if first % chunk or not _power_of_two(first // chunk):
        raise ValueError(f"first_partition={first} is not a power-of-two multiple of the "
                         f"chunk size {chunk}")
    if growth not in GROWTHS:
        raise ValueError(f"partition_growth={growth} is not one of {GROWTHS}")
    if largest % first or not _power_of_two(largest // first):
        raise ValueError(f"largest_partition={largest} is not first_partition={first} times "
                         "a power of two")
    if largest > min(MAX_LARGEST, MAX_PERIOD * chunk):
        raise ValueError(f"largest_partition={largest} is more than {MAX_LARGEST} samples or "
                         f"{MAX_PERIOD} chunks")
    if not supports_nonuniform(signature):
        raise ValueError(f"nonuniform does not run {signature.dtype} streams on "
                         f"{signature.device}")
    plan = NonUniformPlan.for_signature(signature, params)
    if spectra_bytes(signature, plan) > MAX_SPECTRA_BYTES:
        raise ValueError(f"{dict(params)} needs spectra of more than {MAX_SPECTRA_BYTES} "
                         "bytes")


def nonuniform_period(signature: Signature, params: Mapping[str, Any]) -> int:
    """Chunks per block of the largest partition in use: the work repeats after that many."""
    return NonUniformPlan.for_signature(signature, params).period


def _transforms(size: int, rows: int) -> float:
    return 2.5 * size * max(size.bit_length() - 1, 1) * rows


def nonuniform_flops(signature: Signature, params: Mapping[str, Any]) -> float:
    """Operations of one full chunk, averaged over a period: the head's transforms and
    products, each stage's shared among the chunks of its block, and :data:`OP_FLOPS` for
    each torch operation (the head's few per chunk, a stage's few per block)."""
    s, plan = signature, NonUniformPlan.for_signature(signature, params)
    rows = s.batch * (s.in_channels + s.out_channels)
    pairs = 8.0 * s.batch * s.out_channels * (s.in_channels // s.groups)
    flops = (_transforms(plan.head_size, rows) + pairs * (plan.head_size // 2 + 1)
             + 6 * OP_FLOPS)
    for stage in plan.stages:
        per_block = (_transforms(stage.fft_size, rows) + pairs * stage.bins * stage.count
                     + 6 * OP_FLOPS)
        flops += per_block * s.length / stage.partition
    return flops
