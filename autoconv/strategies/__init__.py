"""Conv1d strategies: pure functions with ``F.conv1d``'s signature, registered by name.

``direct`` is ``F.conv1d`` (optionally on an input padded beforehand); ``fft`` convolves with
one FFT of the whole signal; ``overlap_add`` convolves block by block with a tunable FFT block
size. Registry order (direct, fft, overlap_add) is the tie-break order.
"""

from autoconv.strategies.direct_conv import bind_direct, direct, direct_param_grid
from autoconv.strategies.fast_sizes import fast_size, fast_sizes, is_fast_size
from autoconv.strategies.fft_conv import fft, fft_param_grid
from autoconv.strategies.overlap_add_conv import block_size_grid, default_block_size, overlap_add
from autoconv.strategies.plan import ConvPlan, fft_plan, overlap_add_plan
from autoconv.strategies.registry import Strategy, all_strategies, get, names, register
from autoconv.strategies.spectral import supports as spectral_supports
from autoconv.strategies.spectrum_cache import SpectrumCache

register(Strategy("direct", direct, direct_param_grid, bind=bind_direct))
register(Strategy("fft", fft, fft_param_grid, supports=spectral_supports))
register(Strategy("overlap_add", overlap_add, block_size_grid, supports=spectral_supports))

__all__ = [
    "ConvPlan", "SpectrumCache", "Strategy", "all_strategies", "block_size_grid",
    "default_block_size", "direct", "fast_size", "fast_sizes", "fft", "fft_param_grid",
    "fft_plan", "get", "is_fast_size", "names", "overlap_add", "overlap_add_plan", "register",
    "spectral_supports",
]
