"""The records the tuning database stores, as pydantic models.

These are the only shapes that cross the boundary of the store: the tuner builds them, bundles
are validated into them field by field (strict types, finite and bounded numbers, short
strings, no unknown fields), and queries return them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationInfo,
    computed_field,
    field_validator,
    model_serializer,
)

#: Bounds that keep every number within a 32-bit column and every string short.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
#: Most timed calls one measurement can have (autoconv's ``max_samples`` is bounded by it);
#: an imported row claiming more is stored with this many.
MAX_SAMPLES = 10_000
#: A decision whose fastest candidate was timed fewer times than this is *provisional* (a
#: first call's quick answer under its budget): ``autoconv warm`` times every candidate at
#: least this often, re-measures provisional decisions, and ``autoconv stats`` counts them.
SETTLED_SAMPLES = 3
#: How a measurement taken while the machine was busy says so: its ``note`` starts with this
#: (the rest says how busy). Such a decision is *provisional* whatever its sample count.
CONTENDED_NOTE = "contended:"
#: How a measurement written from the timings of live calls says so (it corrected a decision).
CORRECTED_NOTE = "corrected:"
#: The longest plausible single measurement (one day); anything longer is a corrupt record.
MAX_SECONDS = 86_400.0

PositiveInt = Annotated[int, Field(ge=1, le=INT32_MAX)]
NonNegativeInt = Annotated[int, Field(ge=0, le=INT32_MAX)]
ShortName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,32}$")]
#: Short text without NUL characters (PostgreSQL cannot store them in a text column).
Text = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00]*$")]
ParamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
ParamValue = (bool | Annotated[int, Field(ge=-INT64_MAX, le=INT64_MAX)]
              | Annotated[float, Field(allow_inf_nan=False)]
              | Text)
Capability = Annotated[str, StringConstraints(pattern=r"^\d{1,2}\.\d{1,2}$")]
Seconds = Annotated[float, Field(allow_inf_nan=False, le=MAX_SECONDS)]

_RECORD = ConfigDict(extra="forbid", frozen=True)


class DeviceRecord(BaseModel):
    """The fingerprint of one machine: what can change which conv1d strategy is fastest.

    ``device_id`` is a stable hash of the identifying fields (every field except
    ``autoconv_version``): the same machine with the same software stack gets the same id in
    every process and on every run, and a change of CPU, GPU, driver, thread count or library
    version gives a new id, so timings measured under one stack are never served to another.

    ``autoconv_version`` is kept out of the hash on purpose: autoconv's strategies are thin
    layers over torch's kernels, so upgrading autoconv does not invalidate what was measured,
    and hashing it would throw every measurement away on each release. Each measurement still
    records the autoconv version that made it, so a change that does matter can filter on it.
    The database keeps a device's fingerprint as first recorded (so ``autoconv_version`` there
    is the version that first measured on the device).
    """

    model_config = _RECORD

    cpu_model: Text
    cpu_cores: PositiveInt
    torch_threads: PositiveInt
    gpu_name: Text | None = None
    compute_capability: Capability | None = None
    driver_version: Text | None = None
    torch_version: Text
    cuda_version: Text | None = None
    cudnn_version: Text | None = None
    mkl_version: Text | None = None
    onednn_version: Text | None = None
    platform: Text | None = None
    autoconv_version: Text

    @computed_field  # type: ignore[prop-decorator]
    @property
    def device_id(self) -> str:
        """First 20 hex digits of the sha256 of the identifying fields, as canonical JSON."""
        identity = self.model_dump(exclude={"autoconv_version", "device_id"})
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:20]


class SignatureRecord(BaseModel):
    """A conv1d call signature, field for field ``autoconv.signature.Signature``.

    ``SignatureRecord(**signature.as_dict())`` converts one; the record is hashable.

    ``chunk_size`` is set only for a *stream* (a causal convolution fed in chunks of up to
    that many samples, whose streaming strategies are measured per chunk); for a conv1d call
    it is None and appears neither in :attr:`key` nor in the record's dump, so the keys and
    bundles of conv1d calls are what they were before streams existed.

    ``weight_reused`` is True for a call whose weight is the same unchanged tensor on every
    call and needs no gradient (an ``autoconv.Conv1d`` layer's in inference: the FFT
    strategies reuse its spectrum), timed and decided apart from a functional call of the
    same shapes. False, it too appears neither in :attr:`key` nor in the dump. A stream is
    never one (a record with both ``chunk_size`` and ``weight_reused`` is refused).
    """

    model_config = _RECORD

    batch: PositiveInt
    in_channels: PositiveInt
    out_channels: PositiveInt
    length: PositiveInt
    kernel_size: PositiveInt
    stride: PositiveInt
    padding_left: NonNegativeInt
    padding_right: NonNegativeInt
    dilation: PositiveInt
    groups: PositiveInt
    dtype: ShortName
    device: ShortName
    requires_grad: bool = False
    chunk_size: PositiveInt | None = None
    weight_reused: bool = False

    @field_validator("weight_reused")
    @classmethod
    def _not_a_stream(cls, value: bool, info: ValidationInfo) -> bool:
        """A stream's signature (``chunk_size`` set) never has ``weight_reused``."""
        if value and info.data.get("chunk_size") is not None:
            raise ValueError("a stream's signature (chunk_size set) cannot have "
                             "weight_reused=True")
        return value

    @property
    def key(self) -> str:
        """Compact, unique text form of every field: the indexed lookup key in the database
        (a stream's ends with ``|c`` and its chunk size, a reused weight's with ``|wr``)."""
        chunk = "" if self.chunk_size is None else f"|c{self.chunk_size}"
        reused = "|wr" if self.weight_reused else ""
        return (f"{self.batch}x{self.in_channels}x{self.length}>{self.out_channels}"
                f"|k{self.kernel_size}s{self.stride}p{self.padding_left},{self.padding_right}"
                f"d{self.dilation}g{self.groups}|{self.dtype}|{self.device}"
                f"|{'grad' if self.requires_grad else 'nograd'}{chunk}{reused}")

    @property
    def is_stream(self) -> bool:
        """Whether this is a stream's signature (``chunk_size`` set)."""
        return self.chunk_size is not None

    @model_serializer(mode="wrap")
    def _without_unset_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The fields, ``chunk_size`` and ``weight_reused`` only when set (a conv1d call
        dumps as it always did)."""
        fields = handler(self)
        if self.chunk_size is None:
            fields.pop("chunk_size", None)
        if not self.weight_reused:
            fields.pop("weight_reused", None)
        return fields


class CandidateMeasurement(BaseModel):
    """What was measured for one candidate (a strategy with its parameters), signature aside.

    ``ok=False`` keeps a failed or disqualified candidate (``note`` says why) so that it is not
    measured again; such a record is never a winner.
    """

    model_config = _RECORD

    strategy: ShortName
    params: dict[ParamName, ParamValue] = Field(default_factory=dict, max_length=32)
    median_s: Annotated[Seconds, Field(gt=0)]
    spread_s: Annotated[Seconds, Field(ge=0)] = 0.0
    samples: Annotated[int, Field(ge=1, le=INT32_MAX)]
    error: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    ok: bool = True
    note: Text | None = None
    measured_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    autoconv_version: Text

    @field_validator("measured_at")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        """A naive time is taken as UTC; an aware one is converted to UTC. A time more than a
        day ahead of this machine's clock is refused: it would outrank every real
        measurement with as many samples."""
        try:
            utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:
            raise ValueError("the time is outside years 1-9999 once converted to UTC") from None
        if utc > datetime.now(UTC) + timedelta(days=1):
            raise ValueError(f"{utc.isoformat()} is in the future")
        return utc

    @property
    def params_key(self) -> str:
        """The parameters as canonical JSON (sorted keys): part of the measurement's identity."""
        return params_key(self.params)

    @property
    def contended(self) -> bool:
        """Whether it was measured on a busy machine (its note says so)."""
        return is_contended(self.note)


def is_contended(note: str | None) -> bool:
    """Whether a measurement's note says it was taken on a busy machine."""
    return note is not None and note.startswith(CONTENDED_NOTE)


class MeasurementRecord(CandidateMeasurement):
    """One timed candidate for one signature on one device (see :class:`CandidateMeasurement`
    for the fields other than ``signature``)."""

    signature: SignatureRecord


def params_key(params: dict[str, Any]) -> str:
    """Canonical JSON of a parameter dict: equal dicts give equal text."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


class BestChoice(BaseModel):
    """The winner for one (device, signature): the ok measurement with the smallest median."""

    model_config = ConfigDict(frozen=True)

    strategy: str
    params: dict[str, Any]
    median_s: float
    samples: int
    note: str | None = None


class DeviceStats(BaseModel):
    """What the database holds for one device."""

    device: DeviceRecord
    measurements: int
    signatures: int
    wins: dict[str, int]
    #: signatures whose winner was timed fewer than :data:`SETTLED_SAMPLES` times, or on a
    #: busy machine (:data:`CONTENDED_NOTE`)
    provisional: int = 0
    #: signatures processes answered without a measurement (``TuningDB.want``), and how many
    #: of them are measured now
    wanted: int = 0
    wanted_measured: int = 0
    first_measured: datetime | None
    last_measured: datetime | None


class WantedRecord(BaseModel):
    """A signature answered without a measurement on a device (``TuningDB.wanted``)."""

    device_id: str
    signature: SignatureRecord
    #: calls seen, summed over the processes that noted it
    calls: int
    first_seen: datetime
    last_seen: datetime
    #: whether an ok measurement of it is stored now
    measured: bool = False


class Stats(BaseModel):
    """Summary of a whole database, as ``TuningDB.stats()`` returns it."""

    url: str
    schema_version: str
    devices: int
    measurements: int
    signatures: int
    size_bytes: int | None
    per_device: list[DeviceStats]
