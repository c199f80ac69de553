"""``F.conv1d`` exactly as torch defines it, whatever later replaces ``torch.conv1d``.

``autoconv.enable()`` routes ``torch.nn.functional.conv1d`` and ``torch.conv1d`` through
autoconv; autoconv itself must still reach torch's own implementation, never itself. Every
call autoconv makes to torch's conv1d goes through :func:`conv1d`, the builtin both names are
bound to when torch is imported.
"""

from __future__ import annotations

import torch

#: torch's conv1d (``torch._C._VariableFunctions.conv1d``): ``F.conv1d`` itself.
conv1d = torch._C._VariableFunctions.conv1d
