"""What a conversion returns: one Bundle for what was accepted, and what was not."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import Issue, operation_outcome

__all__ = ["Conversion", "PayloadFormat", "Rejection"]


class PayloadFormat(StrEnum):
    """The formats partners send."""

    HL7V2 = "hl7v2"
    FHIR = "fhir"
    CSV = "csv"
    CCDA = "ccda"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that could not be converted (an NDJSON line, a batch entry, a CSV row)."""

    location: str
    issues: tuple[Issue, ...]

    def to_operation_outcome(self) -> dict[str, Any]:
        """The OperationOutcome for this record."""
        return operation_outcome(self.issues)


@dataclass(frozen=True, slots=True)
class Conversion:
    """A converted payload: a transaction Bundle of what was accepted, the warnings, and
    the records that were rejected (the payload fails as a whole only when all were)."""

    bundle: dict[str, Any]
    issues: tuple[Issue, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    message_type: str = ""
    control_id: str | None = None
    records: int = 1
    sections: tuple[dict[str, Any], ...] = ()  # a C-CDA document's per-section report

    @property
    def resource_count(self) -> int:
        """How many resources the Bundle holds."""
        return len(self.bundle.get("entry", []))

    def summary(self) -> dict[str, Any]:
        """Counts for status records and logs (no content)."""
        kinds: dict[str, int] = {}
        for entry in self.bundle.get("entry", []):
            kind = entry["resource"]["resourceType"]
            kinds[kind] = kinds.get(kind, 0) + 1
        return {
            "records": self.records,
            "rejected": len(self.rejected),
            "resources": self.resource_count,
            "by_type": kinds,
            "warnings": len(self.issues),
        } | ({"sections": list(self.sections)} if self.sections else {})
