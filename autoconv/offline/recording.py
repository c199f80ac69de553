"""Recording the conv1d signatures a model makes, so that they can be pre-tuned.

::

    with autoconv.record() as rec:
        model(example_input)           # plain nn.Conv1d, F.conv1d, torch.conv1d, autoconv...
    rec.save("shapes.json")            # then: autoconv warm --shapes shapes.json

Every ``torch.conv1d`` / ``F.conv1d`` call inside the block is seen through a
``TorchFunctionMode``, whatever module makes it; autoconv's own wrappers run plain
``F.conv1d`` while recording (so nothing is tuned then) and are seen the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from autoconv import plain
from autoconv.offline.shapes_file import dump_shapes
from autoconv.settings import settings
from autoconv.signature import Signature

#: torch's conv1d (``torch.conv1d`` and ``F.conv1d`` are the same builtin until
#: ``autoconv.enable()`` replaces both names; the builtin is what reaches this mode).
_CONV1D = {plain.conv1d}
_PARAMETERS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")


class Recording:
    """The distinct conv1d signatures seen inside a :func:`record` block, in first-seen order.

    Attributes:
        counts: how many calls each signature had.
    """

    def __init__(self) -> None:
        self.counts: Counter[Signature] = Counter()

    @property
    def signatures(self) -> list[Signature]:
        """Distinct signatures, in the order they were first seen."""
        return list(self.counts)

    def add(self, signature: Signature) -> None:
        self.counts[signature] += 1

    def save(self, path: str | Path) -> None:
        """Write the signatures as a shapes file (JSON, or YAML for .yaml/.yml)."""
        dump_shapes(self.signatures, path)

    def __len__(self) -> int:
        return len(self.counts)


class _RecordingMode(TorchFunctionMode):
    def __init__(self, recording: Recording) -> None:
        super().__init__()
        self.recording = recording

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _CONV1D:
            call = dict(zip(_PARAMETERS, args)) | kwargs
            try:
                self.recording.add(Signature.of(**call))
            except (RuntimeError, TypeError):
                pass  # an invalid call: F.conv1d itself reports it below
        return func(*args, **kwargs)


@contextmanager
def record() -> Iterator[Recording]:
    """Record every conv1d signature made inside the ``with`` block.

    Signatures note whether gradients were needed (run the block with autograd enabled and
    trainable parameters to record training signatures). Nothing is tuned while recording.
    """
    recording = Recording()
    with settings.override(mode="off"), _RecordingMode(recording):
        yield recording


def record_model(spec: str, input_shape: tuple[int, ...], *, dtype: torch.dtype = torch.float32,
                 device: str = "cpu", train: bool = False) -> list[Signature]:
    """Build a model from ``package.module:factory`` and record one pass over a random input.

    Args:
        spec: ``module:callable``; the callable takes no arguments and returns an
            ``nn.Module`` (it is the user's own code, imported and run as is).
        input_shape: the example input's shape.
        train: record a training step (forward with gradients, then backward) instead of
            inference: signatures then need gradients.

    Raises:
        ValueError: a malformed spec, or a factory that does not return a module.
        ImportError, AttributeError: the module or factory does not exist.
    """
    import importlib

    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name:
        raise ValueError(f"expected package.module:factory, got {spec!r}")
    factory = getattr(importlib.import_module(module_name), factory_name)
    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{spec}() returned {type(model).__name__}, not a torch.nn.Module")
    model = model.to(device=device, dtype=dtype).train(train)
    example = torch.randn(*input_shape, dtype=dtype, device=device)
    with record() as recording:
        if train:
            output = model(example)
            output = output[0] if isinstance(output, (tuple, list)) else output
            output.float().square().mean().backward()
        else:
            with torch.no_grad():
                model(example)
    return recording.signatures
