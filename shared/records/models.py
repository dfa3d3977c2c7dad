"""The unified record's vocabulary: what is stored for a resource, and what a write did."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["Change", "CurrentVersion", "WriteOutcome"]


class WriteOutcome(StrEnum):
    """What storing one resource did."""

    CREATED = "created"  # first version
    UPDATED = "updated"  # a new current version
    UNCHANGED = "unchanged"  # the same content is already stored: no new version
    OUT_OF_ORDER = "out-of-order"  # older than the current version: kept in history only
    DELETED = "deleted"  # a deletion marker became the current version


@dataclass(frozen=True, slots=True)
class CurrentVersion:
    """The index row of one resource: which version is current, and why."""

    version: int  # the current version id
    latest: int  # the highest version id handed out (history may hold later, older data)
    source_time: datetime  # when the source says the current content was made
    content_hash: str
    recent_hashes: tuple[str, ...]  # contents already in history, for idempotent resends
    patient: str | None  # Patient/<id> whose compartment the resource is in
    deleted: bool
    correlation_id: str  # the ingestion that wrote the current version
    etag: str  # the table row's ETag, for optimistic writes


@dataclass(frozen=True, slots=True)
class Change:
    """One stored change, as the record reports it (for notifications and status)."""

    resource_type: str
    resource_id: str
    version: int
    outcome: WriteOutcome
    blob: str  # the version's blob in ``fhir``
    patient: str | None
    correlation_id: str = ""  # the ingestion that wrote this version
    compartment: str | None = None  # Patient/<id> whose compartment must list it

    @property
    def reference(self) -> str:
        """``Type/id``."""
        return f"{self.resource_type}/{self.resource_id}"
