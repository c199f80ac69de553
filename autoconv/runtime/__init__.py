"""The process-wide runtime: the dispatch every call goes through, and its custom op.

:mod:`~autoconv.runtime.dispatch` holds the process's selector and hot-path dict (one
:class:`~autoconv.runtime.dispatch.Dispatcher`, with an explicit ``reset()``);
:mod:`~autoconv.runtime.custom_op` registers ``torch.ops.autoconv.conv1d`` for
``torch.compile``. Importing this package loads both, so the op exists before anything traces.
"""

from autoconv.runtime import (
    custom_op,  # noqa: F401  (registers torch.ops.autoconv.*)
    dispatch,
)
from autoconv.runtime.dispatch import Dispatcher, dispatcher

__all__ = ["Dispatcher", "dispatch", "dispatcher"]
