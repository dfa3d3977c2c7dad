"""What one conversion knows and collects: the partner, its time zone, and the resources.

``BundleBuilder`` keeps one resource per (type, id): a master entity seen twice in a
message (the same practitioner as attending and admitting) is written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from .errors import Issue, IssueCode, Severity

__all__ = ["BundleBuilder", "ConversionContext"]

_MASTER = {"Patient", "Practitioner", "Organization", "Location", "RelatedPerson"}


@dataclass(frozen=True, slots=True)
class ConversionContext:
    """Per-conversion inputs that do not come from the message itself."""

    partner: str
    zone: tzinfo | None = None  # the partner's configured zone; None: not configured
    source: str | None = None  # where the raw payload is kept, e.g. "raw/p1/2026/..."
    received: datetime = field(default_factory=lambda: datetime.now(UTC))
    code_systems: Mapping[str, str] = field(default_factory=dict)  # partner's names -> URIs
    key_zone: tzinfo | None = None  # the zone times are read in for ids (see hl7v2)
    ccda_strict: bool = False  # refuse a C-CDA document any part of which cannot convert

    @property
    def local_zone(self) -> tzinfo:
        """The zone times sent without an offset are read in: the configured one, else UTC
        (an HL7 v2 message first puts the offset its MSH-7 carries here)."""
        return self.zone or UTC

    @property
    def id_zone(self) -> tzinfo:
        """The zone a time is read in where an id hashes it: ``key_zone`` when set."""
        return self.key_zone or self.local_zone


@dataclass
class BundleBuilder:
    """Collects resources and issues, and writes the transaction Bundle."""

    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def add(self, resource: dict[str, Any]) -> dict[str, str]:
        """Add a resource; returns a Reference to it.

        A master entity met again is the same entity: the first copy stays. Any other
        resource met again with different content is kept as first seen, and the
        collision is reported, so nothing is lost without a word.
        """
        key = (resource["resourceType"], resource["id"])
        kept = self.resources.get(key)
        if kept is None:
            self.resources[key] = resource
        elif kept != resource and key[0] not in _MASTER:
            self.warn(
                None,
                f"two {key[0]} resources in this message have the same identity; "
                "the second was merged into the first",
            )
        return {"reference": f"{key[0]}/{key[1]}"}

    def get(self, reference: dict[str, str]) -> dict[str, Any] | None:
        """The resource a reference points at, if this bundle has it."""
        kind, _, rid = reference["reference"].partition("/")
        return self.resources.get((kind, rid))

    def warn(
        self, location: str | None, text: str, code: IssueCode = IssueCode.INFORMATIONAL
    ) -> None:
        """Record something the partner should know that did not stop the conversion."""
        self.issues.append(
            Issue(code=code, diagnostics=text, location=location, severity=Severity.WARNING)
        )

    def bundle(self) -> dict[str, Any]:
        """A FHIR transaction Bundle of PUT entries, in the order resources were added."""
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{rid}",
                    "resource": resource,
                    "request": {"method": "PUT", "url": f"{kind}/{rid}"},
                }
                for (kind, rid), resource in self.resources.items()
            ],
        }
