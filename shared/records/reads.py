"""Reading the record for a caller: the current version, one version, or the history,
each version passed through the trust model's read scope and the consent engine
(``access``, with the caller's purpose).

Each version is decided for the patients whose data it was when it was stored (its blob
says), not the current version's, so an older version of a resource that moved between
patients is judged by its own patient. For each patient the caller needs a way to the
person (``security/trust.read_access``: a relationship, the population role, or granted
break-the-glass), and then the consents of the whole person must permit. A resource the
caller may not see is answered exactly like one that does not exist, so a refusal reveals
nothing, not even that the id is in use. Resources that are no patient's data
(Organization, Practitioner, Location) need neither. Every decision about patient data,
refusals for want of a relationship included, is written as an AuditEvent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, Protocol

from shared.consent.compartment import place
from shared.consent.models import Action, Actor, Code
from shared.consent.resources import describe_resource
from shared.consent.service import ConsentService
from shared.security.models import Partner
from shared.security.trust import Access, read_access

from .models import CurrentVersion, StoredVersion
from .people import Person

__all__ = ["Reader", "RecordReader", "reference_keys"]

log = logging.getLogger(__name__)
_NO_RELATIONSHIP = "the caller has no relationship with this patient (trust model: read scope)"
_TRUNCATED = "the person spans more records than are followed; an operator must review its links"


class _Versions(Protocol):
    def current(self, resource_type: str, resource_id: str) -> CurrentVersion | None: ...

    def stored(
        self, resource_type: str, resource_id: str, version: int
    ) -> StoredVersion | None: ...

    def versions(self, resource_type: str, resource_id: str) -> list[int]: ...


class _People(Protocol):
    def person(
        self, patient_id: str, memo: MutableMapping[str, Person] | None = None
    ) -> Person: ...

    def asserted(self, partner_id: str, keys: Iterable[str]) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads, and why; one per request (``memo`` keeps the persons it resolved)."""

    actor: Actor
    purpose: Code
    partner: str = ""  # the calling partner's id, where the caller is one
    action: Action = Action.ACCESS  # DISCLOSE when the record goes to a subscriber
    caller: Partner | None = None  # the registered partner: its roles decide the read scope
    memo: dict[str, Person] = field(default_factory=dict, compare=False, repr=False)


def _is_marker(resource: dict[str, Any]) -> bool:
    """A deletion marker: nothing but type, id and meta."""
    return set(resource) <= {"resourceType", "id", "meta"}


def reference_keys(resource: dict[str, Any]) -> dict[str, frozenset[str]]:
    """Per ``Patient/<id>`` a resource names by reference, the identifiers (``system|value``)
    that reference carries too: consent keys besides those of the person's Patients, once
    the sender is known to assert them."""
    keys: dict[str, set[str]] = {}
    for named in place(resource).named:
        if named.identifier:  # "": a reference by identifier alone, for each of its patients
            keys.setdefault(named.reference or "", set()).add("|".join(named.identifier))
    return {p: frozenset(k) for p, k in keys.items()}


class RecordReader:
    """Reads of the unified record within the trust model and consent."""

    def __init__(
        self, store: _Versions, consent: ConsentService, zone: tzinfo, people: _People
    ) -> None:
        self._store = store
        self._consent = consent
        self._zone = zone
        self._people = people

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
        stored = self._store.stored(resource_type, resource_id, version)
        if stored is None or (version == current.version and current.deleted):
            return None
        if _is_marker(stored.resource):
            return None
        patients = stored.patients if stored.patients is not None else current.patients
        source = stored.source or current.source
        return (
            stored.resource if self.permitted(reader, stored.resource, patients, source) else None
        )

    def history(
        self, reader: Reader, resource_type: str, resource_id: str
    ) -> list[dict[str, Any]] | None:
        """The versions the reader may see, newest first, each judged by its own patients;
        None if the resource is unknown or none of it is visible.

        Raises:
            ConsentUnavailableError, StorageUnavailableError: no answer now (fail closed).
        """
        current = self._store.current(resource_type, resource_id)
        if current is None or current.version == 0:
            return None
        found = []
        for version in reversed(self._store.versions(resource_type, resource_id)):
            stored = self._store.stored(resource_type, resource_id, version)
            if stored is None:
                continue
            patients = stored.patients if stored.patients is not None else current.patients
            source = stored.source or current.source
            if _is_marker(stored.resource) or self.permitted(
                reader, stored.resource, patients, source
            ):
                found.append(stored.resource)
        return found if any(not _is_marker(r) for r in found) else None

    def person(self, reader: Reader, patient_id: str) -> tuple[Person, Access]:
        """The person a Patient is part of, and how the reader may reach them.

        Raises:
            StorageUnavailableError: storage failed.
        """
        person = self._people.person(patient_id, reader.memo)
        access = read_access(reader.caller, reader.purpose.code, person.sources, person.related)
        return person, access

    def refuse(self, reader: Reader, patient_id: str) -> None:
        """Audit a request about a patient the reader has no way to (a search refused
        before any resource was looked at).

        Raises:
            StorageUnavailableError: the AuditEvent could not be written.
        """
        self._consent.refuse(
            f"Patient/{patient_id}",
            reader.action,
            reader.purpose,
            reader.actor,
            _NO_RELATIONSHIP,
            None,
            "fhir-intake search",
        )

    def permitted(
        self,
        reader: Reader,
        resource: dict[str, Any],
        patients: tuple[str, ...],
        source: str = "",
    ) -> bool:
        """Whether the reader may see one version of a resource that is the data of
        ``patients``, sent by partner ``source`` (each patient decided, and audited, on its
        own; all must permit).

        Raises:
            ConsentUnavailableError, StorageUnavailableError: no answer now (fail closed).
        """
        ref = f"{resource.get('resourceType')}/{resource.get('id')}"
        observer = (
            "fhir-intake read"
            if reader.action is Action.ACCESS
            else f"fhir-intake {reader.action.value}"
        )
        named = reference_keys(resource)
        for patient in patients:
            person, access = self.person(reader, patient.removeprefix("Patient/"))
            if access is Access.NONE or person.truncated:
                reason = _NO_RELATIONSHIP if access is Access.NONE else _TRUNCATED
                self._consent.refuse(
                    patient, reader.action, reader.purpose, reader.actor, reason, ref, observer
                )
                return False
            if access is Access.BREAK_GLASS:
                log.warning(
                    "read: break-the-glass",
                    extra={
                        "stage": "read",
                        "partner": reader.partner,
                        "outcome": "break-the-glass",
                    },
                )
            decision = self._consent.evaluate(
                person.keys
                | self._people.asserted(
                    source, named.get(patient, frozenset()) | named.get("", frozenset())
                ),
                reader.action,
                reader.purpose,
                reader.actor,
                describe_resource(resource, self._zone),
                resource=ref,
                observer=observer,
                access=access.value,
                patient=patient,
            )
            if not decision.permitted:
                return False
        return True
