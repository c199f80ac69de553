"""Bundles: versioned JSON files that carry measurements between databases and machines.

A bundle is plain data. Importing one reads at most :data:`MAX_BUNDLE_BYTES`, parses it as
JSON (never pickle, never eval), validates every record strictly (types, finite and bounded
numbers, short strings, no unknown fields, device ids that match their fingerprints) before
anything is written, and then writes everything in one transaction: a bad bundle leaves the
database unchanged. No string inside a bundle is ever used as a path.

Layout (version 1): measurements are grouped by (device, signature), so that a signature is
written once for all its candidates (a 100,000-measurement bundle is about half the size)::

    {"format": "autoconv-tuning-bundle", "version": 1, "created_at": "...",
     "devices": [{"device_id": "...", "fingerprint": {DeviceRecord fields}}],
     "groups": [{"device_id": "...", "signature": {SignatureRecord fields},
                 "measurements": [{CandidateMeasurement fields}, ...]}]}

A signature's ``chunk_size`` and ``weight_reused`` are written only when set, so a bundle of
conv1d calls whose weights are not reused is what it was before either existed; a reader
older than a field refuses a bundle that sets it (an unknown field) rather than dropping it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import uuid
from array import array
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tuning_db.errors import BundleError
from tuning_db.records import CandidateMeasurement, DeviceRecord, MeasurementRecord, SignatureRecord
from tuning_db.rows import candidate_row, device_row, signature_columns
from tuning_db.store import TuningDB, connect
from tuning_db.upsert import WriteCounts

FORMAT = "autoconv-tuning-bundle"
VERSION = 1
#: Largest bundle accepted by default (the 100,000 measurements of 10 candidates per
#: signature that ``scripts/bench_db.py`` builds take 25.3 MiB); ``load(max_bytes=...)`` and
#: ``--max-mb`` raise it.
MAX_BUNDLE_BYTES = 64 * 2**20
_PICKLE_PROTOCOL_MARK = b"\x80"


class BundleDevice(BaseModel):
    """A fingerprint in a bundle, with the id the measurements refer to it by."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str = Field(pattern=r"^[0-9a-f]{8,64}$")
    fingerprint: DeviceRecord

    @model_validator(mode="after")
    def _id_matches(self) -> BundleDevice:
        if self.device_id != self.fingerprint.device_id:
            raise ValueError(f"device_id {self.device_id} is not the hash of its fingerprint "
                             f"({self.fingerprint.device_id})")
        return self


class BundleGroup(BaseModel):
    """The measurements of one signature on one device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str = Field(pattern=r"^[0-9a-f]{8,64}$")
    signature: SignatureRecord
    measurements: list[CandidateMeasurement] = Field(min_length=1)


class Bundle(BaseModel):
    """A whole bundle file (see the module doc)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["autoconv-tuning-bundle"]
    version: Literal[1]
    created_at: datetime
    devices: list[BundleDevice]
    groups: list[BundleGroup]

    @model_validator(mode="after")
    def _devices_known(self) -> Bundle:
        known = {device.device_id for device in self.devices}
        if len(known) != len(self.devices):
            raise ValueError("a device is listed twice")
        for index, group in enumerate(self.groups):
            if group.device_id not in known:
                raise ValueError(f"groups[{index}] refers to device {group.device_id}, "
                                 "which the bundle does not list")
        return self

    @property
    def count(self) -> int:
        """How many measurements the bundle holds."""
        return sum(len(group.measurements) for group in self.groups)

    def iter_groups(self) -> Iterator[BundleGroup]:
        """The groups (as :meth:`BundleFile.iter_groups`)."""
        return iter(self.groups)

    def device_rows(self) -> list[dict[str, Any]]:
        """The ``devices`` rows; a device is first seen at its oldest measurement."""
        oldest: dict[str, datetime] = {}
        for group in self.groups:
            first = min(item.measured_at for item in group.measurements)
            oldest[group.device_id] = min(first, oldest.get(group.device_id, first))
        return [device_row(device.fingerprint, oldest.get(device.device_id, self.created_at))
                for device in self.devices]


def build(devices: Iterable[DeviceRecord],
          measurements: Iterable[tuple[str, MeasurementRecord]]) -> Bundle:
    """A bundle of already-validated records (no second validation pass).

    Measurements of the same device and signature that come one after another (as
    ``TuningDB.measurements`` orders them) share a group.
    """
    groups = [
        BundleGroup.model_construct(device_id=device_id, signature=signature,
                                    measurements=[measurement for _, measurement in run])
        for (device_id, _, signature), run in groupby(
            measurements, key=lambda item: (item[0], item[1].signature.key,
                                            item[1].signature))]
    used = {group.device_id for group in groups}
    listed = [BundleDevice.model_construct(device_id=device.device_id, fingerprint=device)
              for device in devices if device.device_id in used]
    return Bundle.model_construct(format=FORMAT, version=VERSION, created_at=datetime.now(UTC),
                                  devices=listed, groups=groups)


def to_json(bundle: Bundle) -> bytes:
    """The bundle as compact JSON (device ids are written once, beside each fingerprint)."""
    return bundle.model_dump_json(
        exclude={"devices": {"__all__": {"fingerprint": {"device_id"}}}},
        warnings=False).encode()


def export_bundle(db: TuningDB, path: str | os.PathLike[str], device_id: str | None = None,
                  winners_only: bool = False) -> int:
    """Write ``db``'s measurements to a bundle file, atomically; returns how many.

    Args:
        device_id: only this device's measurements.
        winners_only: only the winner of each (device, signature).

    Raises:
        BundleError: ``device_id`` is not in the database, or the file cannot be written.
    """
    devices = db.devices()
    if device_id is not None and device_id not in {device.device_id for device in devices}:
        known = ", ".join(device.device_id for device in devices) or "none"
        raise BundleError(f"no device {device_id} in {db.where} (devices: {known})")
    bundle = build(devices, db.measurements(device_id, winners_only=winners_only,
                                             streams=None))
    count = bundle.count
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temporary.write_bytes(to_json(bundle))
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise BundleError(f"cannot write {target}: {error.strerror}") from None
    return count


def _describe(error: ValidationError, prefix: str = "") -> str:
    first = error.errors(include_url=False)[0]
    where = prefix + ".".join(str(part) for part in first["loc"])
    more = f" (and {error.error_count() - 1} more problems)" if error.error_count() > 1 else ""
    return f"{where.rstrip('.') or 'the top level'}: {first['msg']}{more}"


class BundleHeader(BaseModel):
    """Everything in a bundle file but its groups."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["autoconv-tuning-bundle"]
    version: Literal[1]
    created_at: datetime
    devices: list[BundleDevice]

    @model_validator(mode="after")
    def _devices_once(self) -> BundleHeader:
        if len({device.device_id for device in self.devices}) != len(self.devices):
            raise ValueError("a device is listed twice")
        return self


class BundleFile:
    """A bundle file validated in full, whose groups are read again one at a time to write.

    Only the file's text, the position of each group in it and the header stay in memory, so
    an import takes a small multiple of the file's size whatever the number of measurements
    (a whole :class:`Bundle` of 400,000 measurements took 1.1 GB). Build it with
    :func:`parse` or :func:`load`.
    """

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self._text = text
        self._spans = array("q")  # start, end of each group in the text
        self._oldest: dict[str, datetime] = {}
        self.count = 0
        header = self._scan()
        self.devices = header.devices
        self.created_at = header.created_at

    def _scan(self) -> BundleHeader:
        scanner = _Scanner(self._text, self.name)
        header_text = []
        seen: set[str] = set()
        scanner.expect("{")
        while not scanner.ends_with("}"):
            if seen:
                scanner.expect(",")
            key = scanner.key()
            if key in seen:
                raise BundleError(f"{self.name} is not a valid tuning bundle: {key} is given "
                                  "twice")
            seen.add(key)
            if key == "groups":
                scanner.each_in_array(self._spans)
            else:
                start, end = scanner.value()
                header_text.append(f"{json.dumps(key)}:{self._text[start:end]}")
        scanner.at_end()
        if "groups" not in seen:
            raise BundleError(f"{self.name} is not a valid tuning bundle: groups: Field "
                              "required")
        try:
            header = BundleHeader.model_validate_json("{" + ",".join(header_text) + "}",
                                                      strict=True)
        except ValidationError as error:
            raise BundleError(f"{self.name} is not a valid tuning bundle: "
                              f"{_describe(error)}") from None
        known = {device.device_id for device in header.devices}
        for index, group in enumerate(self._groups()):
            if group.device_id not in known:
                raise BundleError(f"{self.name} is not a valid tuning bundle: groups[{index}] "
                                  f"refers to device {group.device_id}, which the bundle does "
                                  "not list")
            self.count += len(group.measurements)
            first = min(item.measured_at for item in group.measurements)
            self._oldest[group.device_id] = min(first, self._oldest.get(group.device_id, first))
        return header

    def _groups(self) -> Iterator[BundleGroup]:
        spans = self._spans
        for index in range(0, len(spans), 2):
            try:
                yield BundleGroup.model_validate_json(
                    self._text[spans[index]:spans[index + 1]], strict=True)
            except ValidationError as error:
                raise BundleError(f"{self.name} is not a valid tuning bundle: "
                                  f"{_describe(error, f'groups.{index // 2}.')}") from None

    def iter_groups(self) -> Iterator[BundleGroup]:
        """The groups, validated again from the text one at a time."""
        return self._groups()

    def device_rows(self) -> list[dict[str, Any]]:
        """The ``devices`` rows; a device is first seen at its oldest measurement."""
        return [device_row(device.fingerprint,
                           self._oldest.get(device.device_id, self.created_at))
                for device in self.devices]


class _Scanner:
    """Walks the top level of a JSON object, handing each value's extent to the caller."""

    _decoder = json.JSONDecoder()
    _space = re.compile(r"[ \t\n\r]*")

    def __init__(self, text: str, name: str) -> None:
        self.text, self.name, self.at = text, name, 0

    def _fail(self, what: str) -> BundleError:
        line = self.text.count("\n", 0, self.at) + 1
        return BundleError(f"{self.name} is not a JSON bundle: {what} (line {line}, "
                           f"offset {self.at})")

    def _skip(self) -> None:
        match = self._space.match(self.text, self.at)
        self.at = match.end() if match else self.at

    def ends_with(self, char: str) -> bool:
        self._skip()
        if self.text.startswith(char, self.at):
            self.at += 1
            return True
        return False

    def expect(self, char: str) -> None:
        if not self.ends_with(char):
            raise self._fail(f"expected {char!r}")

    def value(self) -> tuple[int, int]:
        self._skip()
        start = self.at
        try:
            parsed, self.at = self._decoder.raw_decode(self.text, start)
        except json.JSONDecodeError as error:
            self.at = error.pos
            raise self._fail(error.msg) from None
        except RecursionError:
            raise self._fail("nested too deeply (recursion limit)") from None
        del parsed
        return start, self.at

    def key(self) -> str:
        start, end = self.value()
        key = json.loads(self.text[start:end])
        if not isinstance(key, str):
            self.at = start
            raise self._fail("expected a name")
        self.expect(":")
        return key

    def each_in_array(self, spans: array) -> None:  # type: ignore[type-arg]
        self.expect("[")
        first = True
        while not self.ends_with("]"):
            if not first:
                self.expect(",")
            first = False
            spans.extend(self.value())

    def at_end(self) -> None:
        self._skip()
        if self.at != len(self.text):
            raise self._fail("extra data after the bundle")


#: What only a shapes file (``autoconv warm --shapes FILE``, JSON or YAML) has: entries with
#: tensor shapes, or a top-level list of signatures.
_SHAPES_FILE = re.compile(r"""(?m)(?:^|[{,\s])["']?(?:input_shape|weight_shape|signatures)"""
                          r"""["']?\s*:""")


def looks_like_shapes_file(data: bytes) -> bool:
    """Whether bytes that are not a bundle hold a shapes file instead (the list of
    signatures ``autoconv warm --shapes`` measures): its keys, and no bundle's."""
    text = data[:1_000_000].decode("utf-8", errors="replace")
    return (FORMAT not in text and '"groups"' not in text
            and _SHAPES_FILE.search(text) is not None)


def parse(data: bytes, name: str) -> BundleFile:
    """Validate bundle bytes strictly; ``name`` is used in messages only.

    Raises:
        BundleError: not JSON, a pickle, a shapes file (the message names the command that
            takes it), or any record that fails validation.
    """
    try:
        return _parse(data, name)
    except BundleError:
        if looks_like_shapes_file(data):
            raise BundleError(
                f"{name} is a shapes file (signatures to measure), not a tuning bundle: "
                f"measure them with: autoconv warm --shapes {shlex.quote(name)}") from None
        raise


def _parse(data: bytes, name: str) -> BundleFile:
    if data.startswith(_PICKLE_PROTOCOL_MARK):
        raise BundleError(f"{name} looks like a Python pickle, not a JSON bundle; pickles are "
                          "never loaded")
    if not data.lstrip()[:1] == b"{":
        raise BundleError(f"{name} is not a JSON bundle (it does not start with '{{')")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BundleError(f"{name} is not a JSON bundle: not UTF-8 text at offset "
                          f"{error.start}") from None
    return BundleFile(name, text)


def load(path: str | os.PathLike[str], max_bytes: int = MAX_BUNDLE_BYTES) -> BundleFile:
    """Read and validate a bundle file (see :func:`parse`), refusing one over ``max_bytes``.

    Raises:
        BundleError: missing, unreadable, too large, or invalid.
    """
    source = Path(path)
    try:
        status = source.stat()
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(status.st_mode):  # a FIFO or a device would block or never end
            raise BundleError(f"{source} is not a regular file, not a bundle file")
        size = status.st_size
        if size > max_bytes:
            raise BundleError(f"{source} is {size / 2**20:.1f} MiB, more than the "
                              f"{max_bytes / 2**20:.3g} MiB a bundle may have")
        with source.open("rb") as file:
            # read(n) reserves n bytes first: ask for what the file holds, not for the limit
            data = file.read(size + 1)
            if len(data) > size:  # it grew since stat(): read on, up to the limit
                data += file.read(max_bytes + 1 - len(data))
    except FileNotFoundError:
        raise BundleError(f"no such bundle file: {source}") from None
    except IsADirectoryError:
        raise BundleError(f"{source} is a folder, not a bundle file") from None
    except OSError as error:
        raise BundleError(f"cannot read {source}: {error.strerror}") from None
    if len(data) > max_bytes:
        raise BundleError(f"{source} is larger than the {max_bytes / 2**20:.3g} MiB a bundle "
                          "may have")
    return parse(data, str(source))


def import_bundle(db: TuningDB, path: str | os.PathLike[str],
                  max_bytes: int = MAX_BUNDLE_BYTES) -> WriteCounts:
    """Validate a whole bundle, then write it in one transaction.

    Measurements already stored keep the better-supported version (see ``TuningDB``); a
    measurement made on a machine of the database beats an imported one.

    Returns:
        How many measurements were new, replaced a stored one, or changed nothing.
    """
    return write(db, load(path, max_bytes))


#: Measurement rows handed to the database at a time while a bundle is written.
WRITE_BATCH = 2_000


def _batches(source: Bundle | BundleFile) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for group in source.iter_groups():
        base = signature_columns(group.device_id, group.signature)
        batch += [candidate_row(base, item, imported=True) for item in group.measurements]
        if len(batch) >= WRITE_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def write(db: TuningDB, source: Bundle | BundleFile) -> WriteCounts:
    """Write a validated bundle in one transaction, as imported measurements."""
    total = WriteCounts()
    for counts in db.write_batches(source.device_rows(), lambda: _batches(source)):
        total += counts
    return total


def _read_source(source: str, max_bytes: int) -> Bundle | BundleFile:
    """A bundle file, or a database URL read (without creating anything) into a bundle."""
    if "://" not in source:
        return load(source, max_bytes)
    with connect(source, create=False) as db:
        return build(db.devices(), db.measurements(streams=None))


def merge(sources: Sequence[str], into: TuningDB,
          max_bytes: int = MAX_BUNDLE_BYTES) -> dict[str, WriteCounts]:
    """Merge bundles and databases into ``into`` in one transaction, as imported rows.

    Every source is read and validated before anything is written. Rows stay with their
    device; for the same (device, signature, strategy, params) the better-supported
    measurement is kept (see ``TuningDB``: a measurement made on a machine of ``into`` stays,
    then more samples, then newer).

    Returns:
        Per source, how many of its measurements were new, replaced a stored one (or one of
        an earlier source), or changed nothing.
    """
    read = {source: _read_source(source, max_bytes) for source in sources}
    device_rows = [row for bundle in read.values() for row in bundle.device_rows()]
    owners: list[str] = []  # the source of each batch, in the order they are written

    def batches() -> Iterator[list[dict[str, Any]]]:
        owners.clear()  # the write may be retried from the start (a busy SQLite file)
        for source, bundle in read.items():
            for batch in _batches(bundle):
                owners.append(source)
                yield batch

    written = into.write_batches(device_rows, batches)
    counts = {source: WriteCounts() for source in sources}
    for source, batch_counts in zip(owners, written, strict=True):
        counts[source] += batch_counts
    return counts
