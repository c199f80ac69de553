"""The process-wide runtime: the dispatch every call goes through, and its custom op.

:mod:`~autoconv.runtime.dispatch` holds the process's selector and hot-path dict (one
:class:`~autoconv.runtime.dispatch.Dispatcher`, with an explicit ``reset()``);
:mod:`~autoconv.runtime.custom_op` registers ``torch.ops.autoconv.conv1d`` for
``torch.compile``; :mod:`~autoconv.runtime.scripting` makes ``torch.jit.script`` compile
``autoconv.conv1d`` as ``aten::conv1d``. Importing this package loads them all, so the op
exists before anything traces.
"""

from autoconv.runtime import (
    custom_op,  # noqa: F401  (registers torch.ops.autoconv.*)
    dispatch,
    scripting,  # noqa: F401  (autoconv.conv1d is aten::conv1d to TorchScript)
)
from autoconv.runtime.dispatch import Dispatcher, dispatcher

__all__ = ["Dispatcher", "dispatch", "dispatcher"]
