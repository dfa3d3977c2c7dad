"""The message every stage puts on a queue: a versioned, frozen envelope.

Payloads never travel in queue messages (64 KiB limit, and PHI would sit in queue
logs); the envelope points at a blob instead, and carries what a stage needs to
route, correlate and retry.

Version 2 adds ``resources.changed``: the changes one Bundle made to the record, each
named by type, id, version, event and patients, in one message instead of a
``resource.changed`` message per resource whose blob name the next stage parsed back.
Only such envelopes are written as version 2, so an instance of the version before
still reads every other kind; version-1 envelopes, in a queue or a poison queue, are
read as they always were.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import EnvelopeError
from .logs import new_traceparent, trace_ids
from .names import Container
from .telemetry import current_traceparent

__all__ = [
    "CHANGES_PER_MESSAGE",
    "ENVELOPE_VERSION",
    "PATIENTS_PER_RESOURCE",
    "BlobRef",
    "ChangeRef",
    "Envelope",
    "EnvelopeKind",
]

ENVELOPE_VERSION: Literal[1] = 1
CHANGES_PER_MESSAGE = 100  # a resources.changed message's changes at most (about 20 KiB)
# The most patients one resource may name (a Group, an Appointment): the trust model
# refuses to place a resource naming more, so no change ever has to carry more.
PATIENTS_PER_RESOURCE = 100
_MAX_MESSAGE_BYTES = 48 * 1024  # storage queues take 64 KiB, base64 costs a third of it


class EnvelopeKind(StrEnum):
    """What the referenced payload is, which tells the receiving stage what to do."""

    RAW_RECEIVED = "raw.received"  # a partner payload in `raw`: normalize it
    BUNDLE_NORMALIZED = "bundle.normalized"  # a Bundle in `normalized`: check consent
    BUNDLE_PERMITTED = "bundle.permitted"  # consent allowed it: store it
    RESOURCE_CHANGED = "resource.changed"  # version 1: one change, its version blob named
    RESOURCES_CHANGED = "resources.changed"  # version 2: a Bundle's changes, each named
    DELIVERY_DUE = "delivery.due"  # a webhook delivery to attempt
    EXPORT_REQUESTED = "export.requested"  # a bulk export job (correlation id = job id)


class BlobRef(BaseModel):
    """Where a payload lives: a logical container name (never prefixed) and a blob name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    container: str = Field(min_length=3, max_length=63)
    name: str = Field(min_length=1, max_length=1024)
    etag: str | None = None


class ChangeRef(BaseModel):
    """One version the record stored, as the notify stage needs it: which, what happened
    (None: look at the version, which says), and whose data it is (Patient/<id>)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(pattern=r"^[A-Z][A-Za-z]{1,63}$")
    id: str = Field(pattern=r"^[A-Za-z0-9\-.]{1,64}$")
    version: int = Field(ge=1)
    event: Literal["created", "updated", "deleted"] | None = None
    patients: tuple[str, ...] = Field(default=(), max_length=PATIENTS_PER_RESOURCE)


class Envelope(BaseModel):
    """A queue message between stages.

    ``id`` is this message's own id; ``correlation_id`` stays the same from
    ingestion to notification, so logs and status join up across stages.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1, 2] = ENVELOPE_VERSION
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    correlation_id: str = Field(min_length=1, max_length=128)
    partner: str = Field(min_length=1, max_length=64)
    kind: EnvelopeKind
    blob: BlobRef | None = None
    created: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    attempt: int = Field(default=0, ge=0)
    traceparent: str | None = Field(default=None, max_length=55)
    subscription: str | None = Field(default=None, pattern=r"^[a-z0-9]{32}$")  # deliveries
    changes: tuple[ChangeRef, ...] | None = Field(default=None, max_length=CHANGES_PER_MESSAGE)

    @model_validator(mode="after")
    def _versioned(self) -> Self:
        if (self.changes is not None) != (self.version == 2):
            raise ValueError("changes travel in version-2 envelopes, and only they do")
        if (self.changes is not None) != (self.kind is EnvelopeKind.RESOURCES_CHANGED):
            raise ValueError("changes are what a resources.changed envelope carries")
        return self

    @classmethod
    def raw_received(
        cls,
        ingestion_id: str,
        partner: str,
        raw_blob: str,
        created: datetime,
        traceparent: str | None = None,
    ) -> Envelope:
        """The envelope that sends a stored payload in ``raw`` to normalization."""
        return cls(
            correlation_id=ingestion_id,
            partner=partner,
            kind=EnvelopeKind.RAW_RECEIVED,
            created=created,
            blob=BlobRef(container=Container.RAW, name=raw_blob),
            # One trace per ingestion: the span receiving it (telemetry on), else the
            # caller's if it sent a valid one, else a new one.
            traceparent=current_traceparent()
            or (traceparent if trace_ids(traceparent) else new_traceparent()),
        )

    def to_bytes(self) -> bytes:
        """Serialize for a queue message body (JSON, UTF-8)."""
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_bytes(cls, body: bytes | str) -> Envelope:
        """Parse a queue message body.

        Raises:
            EnvelopeError: the body is not a valid envelope of a version we read; the
                message says which fields are wrong without echoing their values.
        """
        if len(body) > _MAX_MESSAGE_BYTES:
            raise EnvelopeError(f"envelope of {len(body)} bytes is over {_MAX_MESSAGE_BYTES}")
        try:
            return cls.model_validate_json(body)
        except ValidationError as exc:
            fields = ", ".join(sorted({_where(e["loc"], e["type"]) for e in exc.errors()}))
            raise EnvelopeError(f"invalid envelope ({fields})") from exc

    def next(self, kind: EnvelopeKind, blob: BlobRef | None) -> Envelope:
        """The envelope for the next stage: new id, same correlation, attempt reset; the
        traceparent of the span handling this one when telemetry records it (so the next
        stage's span is its child), else the one this envelope came with."""
        return self.model_copy(
            update={
                "traceparent": current_traceparent() or self.traceparent,
                "version": ENVELOPE_VERSION,
                "id": uuid.uuid4(),
                "kind": kind,
                "blob": blob,
                "created": datetime.now(UTC),
                "attempt": 0,
                "changes": None,
            }
        )

    def changed(self, changes: tuple[ChangeRef, ...]) -> Envelope:
        """The ``resources.changed`` envelope (version 2) for these changes of the record."""
        return Envelope.model_validate(
            {
                **self.next(EnvelopeKind.RESOURCES_CHANGED, None).model_dump(),
                "version": 2,
                "kind": EnvelopeKind.RESOURCES_CHANGED,
                "changes": changes,
            }
        )


def _where(loc: tuple[int | str, ...], kind: str) -> str:
    """The field an error is about; the one rule of the whole model is which version
    carries changes."""
    if loc:
        return ".".join(str(p) for p in loc)
    return "body" if kind == "json_invalid" else "version"
