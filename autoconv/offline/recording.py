"""Recording the conv1d signatures a model makes, so that they can be pre-tuned.

::

    with autoconv.record() as rec:
        model(example_input)           # plain nn.Conv1d, F.conv1d, torch.conv1d, autoconv...
    rec.save("shapes.json")            # then: autoconv warm --shapes shapes.json

Every ``torch.conv1d`` / ``F.conv1d`` call inside the block is seen through a
``TorchFunctionMode``, whatever module makes it; autoconv's own wrappers run plain
``F.conv1d`` while recording (so nothing is tuned then) and are seen the same way.

A layer's call without gradients (its weight a parameter, or the result of a
``parametrizations.weight_norm``) is recorded twice: as the functional call
``autoconv.enable()`` makes of it, and as the call an ``autoconv.Conv1d`` layer makes, whose
weight is reused (:attr:`Signature.weight_reused`): the recording cannot tell which of the
two drop-ins will run the model, and each is decided apart.
"""

from __future__ import annotations

import dataclasses
import sys
import weakref
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.nn.utils import parametrizations
from torch.overrides import TorchFunctionMode

from autoconv import contexts, plain
from autoconv.offline.shapes_file import dump_shapes
from autoconv.settings import settings
from autoconv.signature import Signature

#: torch's conv1d (``torch.conv1d`` and ``F.conv1d`` are the same builtin until
#: ``autoconv.enable()`` replaces both names; the builtin is what reaches this mode).
_CONV1D = {plain.conv1d}
_PARAMETERS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
#: What computes a weight-normed layer's weight ...
_WEIGHT_NORM = {torch._weight_norm}
#: ... called from here (``parametrizations.weight_norm``, which ``autoconv.Conv1d`` reuses in
#: inference), not from the older hook (``torch.nn.utils.weight_norm``), whose layer computes
#: a new weight on every call.
_REUSED_WEIGHT_NORM = getattr(getattr(parametrizations, "_WeightNorm", None), "forward", None)


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
        #: weights a weight norm computed in the block (layers' weights)
        self.normed: weakref.WeakValueDictionary[int, torch.Tensor] = (
            weakref.WeakValueDictionary())

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _CONV1D:
            call = dict(zip(_PARAMETERS, args)) | kwargs
            try:
                signature = Signature.of(**call)
            except (RuntimeError, TypeError):
                signature = None  # an invalid call: F.conv1d itself reports it below
            if signature is not None:
                self.recording.add(signature)
                if self._layers(signature, call["weight"]):
                    self.recording.add(dataclasses.replace(signature, weight_reused=True))
        result = func(*args, **kwargs)
        if (func in _WEIGHT_NORM and isinstance(result, torch.Tensor)
                and _REUSED_WEIGHT_NORM is not None
                and sys._getframe(1).f_code is _REUSED_WEIGHT_NORM.__code__):
            self.normed[id(result)] = result
        return result

    def _layers(self, signature: Signature, weight: torch.Tensor) -> bool:
        """Whether the call is a layer's that an ``autoconv.Conv1d`` would make with its
        weight reused: no gradients, no autocast, a parameter or a weight norm's result."""
        return (not (signature.requires_grad or signature.is_degenerate)
                and not contexts.any_autocast() and not weight.is_inference()
                and (isinstance(weight, torch.nn.Parameter)
                     or self.normed.get(id(weight)) is weight))


@contextmanager
def record() -> Iterator[Recording]:
    """Record every conv1d signature made inside the ``with`` block.

    Signatures note whether gradients were needed (run the block with autograd enabled and
    trainable parameters to record training signatures); a layer's call without them is
    noted both as a functional call and as a layer's (see the module docstring). Nothing is
    tuned while recording.
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
