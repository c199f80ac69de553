"""The plan of a uniformly partitioned overlap-save stream: partition length, number of
partitions, FFT size; the parameter grid and the checks of stored parameters.

The kernel, flipped and dilated (``h[d * j] = w[K - 1 - j]``, ``L = d * (K - 1) + 1`` taps), is
cut into ``Q = ceil(L / P)`` partitions of ``P`` taps. Each block of ``P`` input samples is
transformed once (FFT of size ``M >= 2P - 1``, a fast size), and its spectrum joins a
frequency-domain delay line; the output of a block is the sum over ``q`` of the spectrum of
block ``b - q`` times that of partition ``q``, transformed back. With a single partition
(``L <= P``) the transform only needs ``M >= P + L - 1``.

The partition is the chunk size or a multiple of it (``P = k * chunk_size``): a longer
partition means fewer spectra to multiply and add per sample, but a longer FFT per chunk,
and it never adds latency (a chunk that leaves its block incomplete is transformed with the
block's missing samples taken as zeros, which is exact for a causal filter).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autoconv.signature import Signature
from autoconv.strategies.fast_sizes import fast_size
from autoconv.strategies.registry import check_int, check_names

#: Partitions tried, as multiples of the chunk size.
MULTIPLES = (1, 2, 4, 8, 16, 32)
#: The longest partition tried, in samples (beyond it the per-chunk FFT costs more than the
#: products it saves, on every machine measured).
MAX_PARTITION = 4096
#: A stored multiple beyond this is refused as unreasonable.
MAX_MULTIPLE = 256
#: Kernel spectra and delay line larger than this are never built.
MAX_SPECTRA_BYTES = 2 * 2**30
_COMPLEX_BYTES = {"float32": 8, "float64": 16}


@dataclass(frozen=True)
class PartitionPlan:
    """Sizes of one partitioned stream.

    Attributes:
        partition: ``P``, samples per partition and per block.
        span: ``L``, taps of the dilated kernel.
        parts: ``Q``, number of partitions.
        fft_size: ``M``, the transform length.
    """

    partition: int
    span: int
    parts: int
    fft_size: int

    @classmethod
    def of(cls, span: int, partition: int) -> PartitionPlan:
        """The plan for a kernel of ``span`` taps cut into partitions of ``partition``."""
        parts = -(-span // partition)
        taps = partition if parts > 1 else span
        return cls(partition, span, parts, fast_size(partition + taps - 1))

    @classmethod
    def for_signature(cls, signature: Signature, params: Mapping[str, Any]) -> PartitionPlan:
        """The plan of a stream signature with ``params`` (``partition``)."""
        return cls.of(signature.span, int(params.get("partition", signature.length)))

    @property
    def bins(self) -> int:
        """Frequency bins of a real transform of ``fft_size``."""
        return self.fft_size // 2 + 1


def spectra_bytes(signature: Signature, plan: PartitionPlan) -> int:
    """Bytes of the kernel spectra, the delay line and its products of a stream."""
    s = signature
    complex_bytes = _COMPLEX_BYTES.get(s.dtype, 16)
    in_per_group = s.in_channels // s.groups
    kernel = plan.parts * s.out_channels * in_per_group
    delay_line = 2 * max(plan.parts - 1, 0) * s.batch * s.in_channels
    products = max(plan.parts - 2, 1) * s.batch * s.out_channels if in_per_group == 1 else 0
    return (kernel + delay_line + products) * plan.bins * complex_bytes


def supports_partitioned(signature: Signature) -> bool:
    """Real float32 and float64 streams whose smallest plan fits in memory."""
    return (signature.dtype in _COMPLEX_BYTES and signature.chunk_size is not None
            and spectra_bytes(signature, PartitionPlan.of(signature.span, signature.length))
            <= MAX_SPECTRA_BYTES)


def partition_grid(signature: Signature) -> list[dict[str, Any]]:
    """The chunk size, and the multiples of it that still cut the kernel in two or more
    partitions (up to :data:`MAX_PARTITION` samples). On CUDA only the chunk size: each chunk
    then does the same work with the same buffers, so that one captured CUDA graph replays
    the stream (and the GPU does not need fewer products as much)."""
    chunk = signature.length
    if signature.device == "cuda":
        return [{"partition": chunk}]
    grid = []
    for multiple in MULTIPLES:
        partition = multiple * chunk
        if multiple > 1 and (partition >= signature.span or partition > MAX_PARTITION):
            break
        if spectra_bytes(signature, PartitionPlan.of(signature.span, partition)) \
                <= MAX_SPECTRA_BYTES:
            grid.append({"partition": partition})
    return grid


def check_partitioned_params(signature: Signature, params: Mapping[str, Any]) -> None:
    """Only ``partition``: a multiple of the chunk size, at most :data:`MAX_MULTIPLE` chunks,
    whose spectra fit in memory.

    Raises:
        ValueError, TypeError: any other parameter or value.
    """
    check_names(params, {"partition"}, "partitioned")
    chunk = signature.length
    check_int(params, "partition", chunk, chunk * MAX_MULTIPLE)
    partition = params.get("partition", chunk)
    if partition % chunk:
        raise ValueError(f"partition={partition} is not a multiple of the chunk size {chunk}")
    if spectra_bytes(signature, PartitionPlan.of(signature.span, partition)) \
            > MAX_SPECTRA_BYTES:
        raise ValueError(f"partition={partition} needs spectra of more than "
                         f"{MAX_SPECTRA_BYTES} bytes")


def partitioned_period(signature: Signature, params: Mapping[str, Any]) -> int:
    """Chunks per block: the work repeats after that many."""
    return max(1, int(params.get("partition", signature.length)) // signature.length)


def partitioned_flops(signature: Signature, params: Mapping[str, Any]) -> float:
    """Operations of one full chunk, averaged over a block: two transforms of ``M`` points
    per channel, the first partition's products, and a share of the other partitions'."""
    s, plan = signature, PartitionPlan.for_signature(signature, params)
    size = plan.fft_size
    transforms = 2.5 * size * max(size.bit_length() - 1, 1) * s.batch * (
        s.in_channels + s.out_channels)
    products = 8.0 * s.batch * s.out_channels * (s.in_channels // s.groups) * plan.bins
    per_block = (plan.parts - 1) / partitioned_period(signature, params)
    return transforms + products * (1 + per_block)
