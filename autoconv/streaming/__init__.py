"""Streaming convolution: a causal conv1d fed chunk by chunk, exact, with no added latency,
its strategy tuned per stream signature (``autoconv.Conv1dStream``,
``autoconv.Conv1d.stream``).

The engines themselves are strategies (``autoconv/strategies/streaming/``), chosen by the
stream selector (``autoconv/tuning/stream_selector.py``) that the process's dispatcher holds.
"""

from autoconv.streaming.modules import causal_history, stream_of_module
from autoconv.streaming.stream import Conv1dStream

__all__ = ["Conv1dStream", "causal_history", "stream_of_module"]
