"""autoconv: the fastest correct conv1d for each call signature, measured on this machine.

Use ``autoconv.conv1d`` as ``F.conv1d``, ``autoconv.Conv1d`` as ``nn.Conv1d``,
``autoconv.patch(model)`` to convert a whole model, or ``autoconv.enable()`` to route every
conv1d call in the process through autoconv; ``autoconv.Conv1dStream`` (or
``Conv1d.stream(chunk_size)``) runs a causal convolution chunk by chunk, in real time;
``autoconv.settings`` controls the mode (``tune``, ``predict``, ``off``), the database and the
budgets; ``autoconv.select`` tells which strategy a call gets and where from, and
``autoconv.explain`` shows the measurements behind it.

Modules that import torch are loaded on first use, so that ``autoconv`` commands that only
touch the tuning database start quickly.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from autoconv.settings import Settings, settings  # noqa: E402  (no torch: cheap)

# public name -> module that defines it
_LAZY = {
    "conv1d": "autoconv.functional",
    "select": "autoconv.functional",
    "explain": "autoconv.functional",
    "Conv1d": "autoconv.nn",
    "Conv1dStream": "autoconv.streaming",
    "patch": "autoconv.nn",
    "enable": "autoconv.runtime.switch",
    "disable": "autoconv.runtime.switch",
    "enabled": "autoconv.runtime.switch",
    "is_enabled": "autoconv.runtime.switch",
    "unpatch": "autoconv.nn",
    "Choice": "autoconv.choice",
    "Signature": "autoconv.signature",
    "record": "autoconv.offline.recording",
    "strategies": "autoconv.strategies",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'autoconv' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["Settings", "__version__", "settings", *_LAZY]
