"""``autoconv.conv1d`` under ``torch.jit.script``: compiled as ``aten::conv1d``.

TorchScript compiles the Python functions a scripted model calls, and autoconv's dispatch is
not TorchScript (it measures, caches and recovers in Python). ``autoconv.conv1d`` takes
exactly ``F.conv1d``'s arguments, so it is registered as a TorchScript builtin of the same
op ``F.conv1d`` is compiled to: a scripted model that calls it runs ``F.conv1d``, as it would
had it called ``F.conv1d`` (``autoconv.Conv1d`` does the same in its own forward). The table
is one of torch's private ones; a torch without it leaves scripting as it was (an error that
names the function TorchScript could not compile).
"""

import torch

from autoconv.runtime import dispatch


def _register_as_aten_conv1d() -> bool:
    """Register :func:`autoconv.conv1d` as TorchScript's ``aten::conv1d``; whether it was."""
    register = getattr(getattr(torch.jit, "_builtins", None), "_register_builtin", None)
    if register is None:
        return False
    register(dispatch.conv1d, "aten::conv1d")
    return True


registered = _register_as_aten_conv1d()
