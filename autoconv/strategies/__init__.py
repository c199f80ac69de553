"""Conv1d strategies: pure functions with ``F.conv1d``'s signature, registered by name.

``direct`` is ``F.conv1d``; ``fft`` convolves with one FFT of the whole signal; ``overlap_add``
convolves block by block with a tunable FFT block size.
"""

from autoconv.strategies.direct_conv import direct
from autoconv.strategies.registry import Strategy, all_strategies, get, names, register

register(Strategy("direct", direct))

__all__ = ["Strategy", "all_strategies", "direct", "get", "names", "register"]
