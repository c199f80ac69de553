"""Conv1d strategies: pure functions with ``F.conv1d``'s signature, registered by name.

``direct`` is ``F.conv1d`` (optionally on an input padded beforehand); ``fft`` convolves with
one FFT of the whole signal; ``overlap_add`` convolves block by block with a tunable FFT block
size; ``shift_add`` sums a depthwise layer tap by tap over shifted views of its input;
``fused_shift_add`` sums it in one kernel compiled for its signature by ``torch.compile``;
``gemm`` lowers a convolution to one matrix multiply over the unfolded input;
``direct_grads`` computes a depthwise layer's gradients by forward convolutions; ``upcast``
runs a half-precision call in float32. Registry order is the tie-break order. Each registry
entry (:class:`Strategy`) carries everything else autoconv knows about its strategy.
"""

from autoconv.strategies.direct_conv import (
                                             bind_direct,
                                             check_direct_params,
                                             direct,
                                             direct_param_grid,
                                             direct_work,
)
from autoconv.strategies.direct_grads_conv import direct_grads, direct_grads_work
from autoconv.strategies.direct_grads_conv import supports as direct_grads_supports
from autoconv.strategies.fast_sizes import fast_size, fast_sizes, is_fast_size
from autoconv.strategies.fft_conv import fft, fft_param_grid, fft_work
from autoconv.strategies.fused_shift_add_conv import PREPARATION as fused_shift_add_preparation
from autoconv.strategies.fused_shift_add_conv import fused_shift_add, fused_shift_add_work
from autoconv.strategies.fused_shift_add_conv import supports as fused_shift_add_supports
from autoconv.strategies.gemm_conv import computes as gemm_supports
from autoconv.strategies.gemm_conv import gemm, gemm_work
from autoconv.strategies.overlap_add_conv import (
                                             block_size_grid,
                                             check_overlap_add_params,
                                             default_block_size,
                                             overlap_add,
                                             overlap_add_work,
)
from autoconv.strategies.plan import ConvPlan, fft_plan, overlap_add_plan, plan_work
from autoconv.strategies.registry import (
                                             FrozenParams,
                                             Strategy,
                                             all_strategies,
                                             freeze_params,
                                             get,
                                             is_plain_conv1d,
                                             names,
                                             reference,
                                             register,
                                             unregister,
)
from autoconv.strategies.shift_add_conv import computes as shift_add_supports
from autoconv.strategies.shift_add_conv import shift_add, shift_add_work
from autoconv.strategies.spectral import supports as spectral_supports
from autoconv.strategies.spectrum_cache import SpectrumCache
from autoconv.strategies.upcast_conv import (
                                             check_upcast_params,
                                             upcast,
                                             upcast_param_grid,
                                             upcast_work,
)
from autoconv.strategies.upcast_conv import supports as upcast_supports
from autoconv.strategies.work import TERMS, TRAITS, Work, convolution_work, direct_macs

# Okabe-Ito hues: distinct for colour-blind readers.
register(Strategy("direct", direct, direct_param_grid, bind=bind_direct, work=direct_work,
                  check=check_direct_params, reference=True, colour="#0072B2"))
register(Strategy("fft", fft, fft_param_grid, supports=spectral_supports, work=fft_work,
                  takes_spectrum_cache=True, colour="#E69F00"))
register(Strategy("overlap_add", overlap_add, block_size_grid, supports=spectral_supports,
                  work=overlap_add_work, check=check_overlap_add_params,
                  size_params=frozenset({"block_size"}), takes_spectrum_cache=True,
                  colour="#009E73"))
register(Strategy("shift_add", shift_add, supports=shift_add_supports, work=shift_add_work,
                  colour="#CC79A7"))
register(Strategy("fused_shift_add", fused_shift_add, supports=fused_shift_add_supports,
                  work=fused_shift_add_work, preparation=fused_shift_add_preparation,
                  colour="#56B4E9"))
register(Strategy("gemm", gemm, supports=gemm_supports, work=gemm_work, colour="#000000"))
register(Strategy("direct_grads", direct_grads, supports=direct_grads_supports,
                  work=direct_grads_work, colour="#F0E442"))
register(Strategy("upcast", upcast, upcast_param_grid, supports=upcast_supports,
                  work=upcast_work, check=check_upcast_params, colour="#D55E00"))

__all__ = [
    "TERMS", "TRAITS", "ConvPlan", "FrozenParams", "SpectrumCache", "Strategy", "Work",
    "all_strategies", "block_size_grid", "convolution_work", "default_block_size", "direct",
    "direct_grads", "direct_macs", "fast_size", "fast_sizes", "fft",
    "fft_param_grid", "fft_plan", "freeze_params", "fused_shift_add", "gemm", "get", "is_fast_size",
    "is_plain_conv1d",
    "names",
    "overlap_add", "overlap_add_plan", "plan_work", "reference", "register", "shift_add",
    "spectral_supports",
    "unregister", "upcast",
]
