"""Reading the record for a caller: the current version, one version, or the history,
each resource passed through the consent engine (``access``, with the caller's purpose).

A resource the caller may not see is answered exactly like one that does not exist, so
a denial reveals nothing, not even that the id is in use. Resources outside any patient's
compartment (Organization, Practitioner, Location) need no consent. Deletion markers in
a history carry no content and are shown. The consent decision of each patient-data read
is written as an AuditEvent with the caller, the resource and the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Protocol

from shared.consent.models import Action, Actor, Code
from shared.consent.resources import describe_resource
from shared.consent.service import ConsentService

from .models import CurrentVersion

__all__ = ["Reader", "RecordReader"]


class _Versions(Protocol):
    def current(self, resource_type: str, resource_id: str) -> CurrentVersion | None: ...

    def read_version(
        self, resource_type: str, resource_id: str, version: int
    ) -> dict[str, Any] | None: ...

    def versions(self, resource_type: str, resource_id: str) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads, and why."""

    actor: Actor
    purpose: Code
    partner: str = ""  # the calling partner's id, where the caller is one
    action: Action = Action.ACCESS  # DISCLOSE when the record goes to a subscriber


def _is_marker(resource: dict[str, Any]) -> bool:
    """A deletion marker: nothing but type, id and meta."""
    return set(resource) <= {"resourceType", "id", "meta"}


class RecordReader:
    """Consent-filtered reads of the unified record."""

    def __init__(self, store: _Versions, consent: ConsentService, zone: tzinfo) -> None:
        self._store = store
        self._consent = consent
        self._zone = zone

    def read(
        self, reader: Reader, resource_type: str, resource_id: str, version: int | None = None
    ) -> dict[str, Any] | None:
        """The current version (or ``version``), or None: absent, deleted, or not permitted.

        Raises:
            ConsentUnavailableError, StorageUnavailableError: no answer now (fail closed).
        """
        current = self._store.current(resource_type, resource_id)
        if current is None or current.version == 0:
            return None
        if version is None:
            if current.deleted:
                return None
            version = current.version
        resource = self._store.read_version(resource_type, resource_id, version)
        if resource is None or (version == current.version and current.deleted):
            return None
        if _is_marker(resource):
            return None
        return resource if self._permitted(reader, resource, current.patient) else None

    def history(
        self, reader: Reader, resource_type: str, resource_id: str
    ) -> list[dict[str, Any]] | None:
        """The versions the reader may see, newest first; None if the resource is unknown
        or none of it is visible.

        Raises:
            ConsentUnavailableError, StorageUnavailableError: no answer now (fail closed).
        """
        current = self._store.current(resource_type, resource_id)
        if current is None or current.version == 0:
            return None
        found = []
        for version in reversed(self._store.versions(resource_type, resource_id)):
            resource = self._store.read_version(resource_type, resource_id, version)
            if resource is None:
                continue
            if _is_marker(resource) or self._permitted(reader, resource, current.patient):
                found.append(resource)
        return found if any(not _is_marker(r) for r in found) else None

    def _permitted(self, reader: Reader, resource: dict[str, Any], patient: str | None) -> bool:
        if patient is None:
            return True  # not patient data
        keys = {patient}
        if resource.get("resourceType") == "Patient":
            holder: dict[str, Any] | None = resource
        else:
            kind, _, ident = patient.partition("/")
            row = self._store.current(kind, ident)
            holder = self._store.read_version(kind, ident, row.version) if row else None
        for identifier in (holder or {}).get("identifier") or ():
            if identifier.get("value"):
                keys.add(f"{identifier.get('system', '')}|{identifier['value']}")
        decision = self._consent.evaluate(
            keys,
            reader.action,
            reader.purpose,
            reader.actor,
            describe_resource(resource, self._zone),
            resource=f"{resource.get('resourceType')}/{resource.get('id')}",
            observer="fhir-intake read"
            if reader.action is Action.ACCESS
            else f"fhir-intake {reader.action.value}",
        )
        return decision.permitted
