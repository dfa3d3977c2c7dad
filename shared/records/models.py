"""The unified record's vocabulary: what is stored for a resource, and what a write did."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "Change",
    "CurrentVersion",
    "ExportJob",
    "ExportStatus",
    "IngestionRef",
    "PurgeReport",
    "StoredVersion",
    "WriteOutcome",
    "version_blob",
]


class WriteOutcome(StrEnum):
    """What storing one resource did."""

    CREATED = "created"  # first version
    UPDATED = "updated"  # a new current version
    UNCHANGED = "unchanged"  # the same content is already stored: no new version
    OUT_OF_ORDER = "out-of-order"  # older than the current version: kept in history only
    DELETED = "deleted"  # a deletion marker became the current version
    FOREIGN = "foreign"  # another partner's resource: not written (the trust model)


@dataclass(frozen=True, slots=True)
class CurrentVersion:
    """The index row of one resource: which version is current, and why."""

    version: int  # the current version id
    latest: int  # the highest version id handed out (history may hold later, older data)
    source_time: datetime  # when the source says the current content was made
    content_hash: str
    recent_hashes: tuple[str, ...]  # contents already in history, for idempotent resends
    patients: tuple[str, ...]  # Patient/<id> whose compartments the resource is in
    deleted: bool
    correlation_id: str  # the ingestion that wrote the current version
    etag: str  # the table row's ETag, for optimistic writes
    updated: datetime | None = None  # when the store wrote the current version
    source: str = ""  # the partner whose resource it is (every version is that partner's)
    received: datetime | None = None  # when we received the message that made it (ties)

    @property
    def patient(self) -> str | None:
        """The first patient (most resources have exactly one)."""
        return self.patients[0] if self.patients else None


def version_blob(resource_type: str, resource_id: str, version: int) -> str:
    """Where one version of a resource lives in ``fhir``."""
    return f"{resource_type}/{resource_id}/_history/{version}.json"


@dataclass(frozen=True, slots=True)
class Change:
    """One stored change, as the record reports it (for notifications and status)."""

    resource_type: str
    resource_id: str
    version: int
    outcome: WriteOutcome
    blob: str  # the version's blob in ``fhir``
    patients: tuple[str, ...]
    correlation_id: str = ""  # the ingestion that wrote this version
    compartments: tuple[str, ...] = ()  # Patient/<id> whose compartments must list it
    source: str = ""  # the partner that wrote it

    @property
    def reference(self) -> str:
        """``Type/id``."""
        return f"{self.resource_type}/{self.resource_id}"


class ExportStatus(StrEnum):
    """Where a bulk export job is."""

    ACCEPTED = "accepted"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version as stored: the resource and the patients whose data it was then."""

    resource: dict[str, Any]
    patients: tuple[str, ...] | None  # Patient/<id>; empty: none; None: not recorded
    source: str = ""  # the partner that sent it


@dataclass(slots=True)
class ExportJob:
    """One bulk export request (FHIR Bulk Data) and its progress."""

    id: str
    partner: str
    level: str  # "system" or "patient"
    types: list[str]  # empty: every type
    since: str | None  # ISO instant, or None
    purpose: str  # the purpose of use the caller gave (v3 ActReason code)
    request: str  # the kick-off URL, for the manifest
    transaction_time: str  # ISO instant the export reflects
    status: ExportStatus = ExportStatus.ACCEPTED
    outputs: list[dict[str, Any]] = field(default_factory=list)  # type, file, count
    error: str | None = None
    progress: str = ""
    plan: list[str] = field(default_factory=list)  # the types, fixed by the first slice
    cursor: list[str] | None = None  # [type, last id done]: where the next slice starts
    slices: int = 0  # slices run so far
    withheld: int = 0  # resources consent kept out so far
    scope: str = "persons"  # "population": everyone; "persons": those the caller relates to
    etag: str | None = None  # the row's, when read: a slice saves only over what it read

    def to_json(self) -> str:
        """As stored in the job row (without the etag, which is the row's own)."""
        data = asdict(self)
        del data["etag"]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ExportJob:
        """From the job row."""
        data = json.loads(text)
        data["status"] = ExportStatus(data["status"])
        return cls(**data)


@dataclass(frozen=True, slots=True)
class IngestionRef:
    """Where one ingestion's payloads are, kept with each patient it concerned, so that
    erasing a patient can find their source data too."""

    partner: str
    correlation_id: str
    raw: str = ""  # "container/name" of the raw payload
    normalized: str = ""  # name in ``normalized`` (its ``.permitted.json`` sibling too)
    quarantine: str = ""  # prefix in ``quarantine``
    patients: int = 1  # how many patients the payload concerned

    @property
    def row_key(self) -> str:
        """The row's key in the patient's compartment partition (sorts after types)."""
        return f"~ingestion|{self.partner}|{self.correlation_id}"


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What erasing a patient removed, in counts (the data itself is gone)."""

    resources: int = 0
    versions: int = 0
    payloads: int = 0
    consents: int = 0
    shared_payloads_kept: int = 0  # payloads that also hold other patients' data
    shared_resources_kept: int = 0  # resources that are other patients' data too
