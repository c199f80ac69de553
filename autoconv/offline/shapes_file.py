"""Shapes files: the list of conv1d signatures ``autoconv warm --shapes FILE`` pre-tunes.

A shapes file is JSON (``.json``) or YAML (``.yaml`` / ``.yml``): a list of entries, or an
object ``{"version": 1, "signatures": [...]}`` (what :meth:`Recording.save` writes). Each entry
is either a *call* (the shapes you would pass to ``F.conv1d``)::

    - input_shape: [4, 64, 4096]      # (batch, channels, length), or (channels, length)
      weight_shape: [64, 64, 65]      # (out_channels, in_channels / groups, kernel)
      stride: 1                       # optional, default 1
      padding: same                   # optional: int, "same" or "valid"; default 0
      dilation: 1                     # optional, default 1
      groups: 1                       # optional, default 1
      dtype: float32                  # optional, default float32
      requires_grad: false            # optional: tune forward + backward
      weight_reused: false            # optional: a layer's call in inference (same weight)

or a *signature*, with the fields of :class:`autoconv.signature.Signature` (batch,
in_channels, out_channels, length, kernel_size, stride, padding_left, padding_right,
dilation, groups, dtype, device, requires_grad, and weight_reused, written only when true).
Every entry is validated (unknown fields, wrong types, shapes F.conv1d would reject: a clear
error naming the entry); YAML is read with the safe loader, so a file can hold data only.
"""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autoconv.signature import Signature

#: Largest shapes file read (a list of signatures is small; a huge file is a mistake).
MAX_BYTES = 16 * 1024 * 1024
FORMAT_VERSION = 1

Positive = Annotated[int, Field(ge=1, le=2**31 - 1)]
DType = Literal["float16", "bfloat16", "float32", "float64"]


class ShapesFileError(ValueError):
    """A shapes file that cannot be read or does not describe valid conv1d calls."""


class CallEntry(BaseModel):
    """A conv1d call described by its tensor shapes and arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_shape: Annotated[list[Positive], Field(min_length=2, max_length=3)]
    weight_shape: Annotated[list[Positive], Field(min_length=3, max_length=3)]
    stride: Positive = 1
    padding: Annotated[int, Field(ge=0, le=2**31 - 1)] | Literal["same", "valid"] = 0
    dilation: Positive = 1
    groups: Positive = 1
    dtype: DType = "float32"
    requires_grad: bool = False
    weight_reused: bool = False
    name: str | None = None

    def signature(self, device: str) -> Signature:
        """The entry's signature on ``device`` (a device type, e.g. "cpu").

        Raises:
            ShapesFileError: the shapes and arguments are not a valid conv1d call.
        """
        meta = {"device": "meta", "dtype": getattr(torch, self.dtype)}
        try:
            signature = Signature.of(torch.empty(self.input_shape, **meta),
                                     torch.empty(self.weight_shape, **meta), None, self.stride,
                                     self.padding, self.dilation, self.groups)
        except RuntimeError as error:
            raise ShapesFileError(str(error)) from None
        return dataclasses.replace(signature, device=device, requires_grad=self.requires_grad,
                                   weight_reused=self.weight_reused)


class SignatureEntry(BaseModel):
    """A conv1d signature, field for field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch: Positive
    in_channels: Positive
    out_channels: Positive
    length: Positive
    kernel_size: Positive
    stride: Positive = 1
    padding_left: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    padding_right: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    dilation: Positive = 1
    groups: Positive = 1
    dtype: DType = "float32"
    device: Literal["cpu", "cuda"] = "cpu"
    requires_grad: bool = False
    weight_reused: bool = False

    def signature(self, device: str) -> Signature:
        """The signature (on ``device``: a file recorded on one device can warm another).

        Raises:
            ShapesFileError: the fields are not a valid conv1d signature.
        """
        fields = self.model_dump()
        fields["device"] = device
        signature = Signature(**fields)
        if (signature.in_channels % signature.groups or signature.out_channels % signature.groups
                or signature.padded_length < signature.span):
            raise ShapesFileError(f"not a valid conv1d signature: {fields}")
        return signature


def _entry(raw: Any, index: int) -> CallEntry | SignatureEntry:
    if not isinstance(raw, dict):
        raise ShapesFileError(f"entry {index}: expected an object, got {type(raw).__name__}")
    model = CallEntry if "input_shape" in raw or "weight_shape" in raw else SignatureEntry
    try:
        return model.model_validate(raw, strict=False)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ShapesFileError(f"entry {index}: {where}: {first['msg']}") from None


def parse_shapes(data: Any, device: str = "cpu") -> list[Signature]:
    """Validate already-decoded shapes-file data and return its signatures, in order.

    Raises:
        ShapesFileError: the data is not a list of valid entries.
    """
    if isinstance(data, dict):
        unknown = set(data) - {"version", "signatures"}
        if unknown:
            raise ShapesFileError(f"unknown top-level fields: {sorted(unknown)}")
        if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            raise ShapesFileError(f"unsupported shapes file version {data.get('version')!r} "
                                  f"(this autoconv reads version {FORMAT_VERSION})")
        data = data.get("signatures")
    if not isinstance(data, list):
        raise ShapesFileError("expected a list of signatures")
    signatures = []
    for index, raw in enumerate(data):
        entry = _entry(raw, index)
        try:
            signatures.append(entry.signature(device))
        except ShapesFileError as error:
            raise ShapesFileError(f"entry {index}: {error}") from None
    return signatures


def load_shapes(path: str | Path, device: str = "cpu") -> list[Signature]:
    """Read a JSON or YAML shapes file.

    Raises:
        ShapesFileError: missing, too large, not JSON/YAML, or invalid entries (the message
            names the file).
    """
    path = Path(path)
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):  # a FIFO or a device would block or never end
            raise ShapesFileError(f"{path}: not a regular file")
        size = status.st_size
        if size > MAX_BYTES:
            raise ShapesFileError(f"{path}: {size} bytes is larger than the {MAX_BYTES}-byte limit")
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ShapesFileError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ShapesFileError(f"{path}: not a text file") from None
    try:
        data = (yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml")
                else json.loads(text))
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ShapesFileError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: "
                              f"{str(error).splitlines()[0]}") from None
    except RecursionError:
        raise ShapesFileError(f"{path}: nested too deeply to be a shapes file") from None
    try:
        return parse_shapes(data, device)
    except ShapesFileError as error:
        raise ShapesFileError(f"{path}: {error}") from None


def dump_shapes(signatures: list[Signature], path: str | Path) -> None:
    """Write signatures as a shapes file (JSON, or YAML for a .yaml/.yml name); a
    signature's ``weight_reused`` only when true (:meth:`Signature.as_dict`)."""
    path = Path(path)
    data = {"version": FORMAT_VERSION, "signatures": [s.as_dict() for s in signatures]}
    text = (yaml.safe_dump(data, sort_keys=False) if path.suffix.lower() in (".yaml", ".yml")
            else json.dumps(data, indent=1) + "\n")
    path.write_text(text, encoding="utf-8")
