"""Erasing a patient (``Patient/{id}/$purge``): the record, the source payloads, the
consents and every index row, then one AuditEvent that says it happened, in counts.

Order matters for an erasure that stops half-way: payloads, consents and resources go
first, and the patient's compartment partition (which lists both the resources and the
ingestions that carried them) goes last, so running the purge again finds whatever is
left and finishes. A payload that also holds other patients' data (a batch file, a CSV
of several patients) is not deleted for one of them: the report counts it, so an
operator can deal with it; so is a resource that is other patients' data too (an
Appointment of two, a Group). A consent filed only under an identifier (a consent
source's or a registry's) protects every record that carries it, and stays.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.consent.models import Actor
from shared.platform.names import Container
from shared.platform.ports import AuditLog

from .models import CurrentVersion, IngestionRef, PurgeReport

__all__ = ["Purger"]

_AUDIT_NAMESPACE = uuid.UUID("5f2b8e8a-9d7c-5b8e-8f3e-2a4f6c1b9d07")


class _Record(Protocol):
    def compartment_all(self, patient_id: str, after: str | None = None) -> Iterable[str]: ...

    def ingestions_of(self, patient_id: str) -> list[IngestionRef]: ...

    def versions(self, resource_type: str, resource_id: str) -> list[int]: ...

    def read_version(
        self, resource_type: str, resource_id: str, version: int
    ) -> dict[str, Any] | None: ...

    def current(self, resource_type: str, resource_id: str) -> CurrentVersion | None: ...

    def erase(self, resource_type: str, resource_id: str) -> int: ...

    def forget_patient(self, patient_id: str) -> None: ...


class _People(Protocol):
    def forget(self, patient_id: str, identifiers: Iterable[tuple[str, str]]) -> None: ...


class _Consents(Protocol):
    def find(self, keys: Iterable[str]) -> list[dict[str, Any]]: ...

    def remove(self, consent: dict[str, Any], keys: Iterable[str]) -> None: ...


class _Blobs(Protocol):
    def delete(self, container: Container, name: str) -> bool: ...

    def delete_prefix(self, container: Container, prefix: str) -> int: ...


class Purger:
    """Erases one patient."""

    def __init__(
        self,
        record: _Record,
        consents: _Consents,
        blobs: _Blobs,
        audit: AuditLog,
        people: _People,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._people = people
        self._record = record
        self._consents = consents
        self._blobs = blobs
        self._audit = audit
        self._clock = clock

    def purge(self, patient_id: str, requester: Actor) -> PurgeReport:
        """Erase the patient; safe to run again after an interruption.

        Raises:
            StorageUnavailableError, ConsentUnavailableError: run it again later.
        """
        identifiers = self._identifiers(patient_id)
        payloads, shared = 0, 0
        for ingestion in self._record.ingestions_of(patient_id):
            if ingestion.patients > 1:
                shared += 1
                continue
            payloads += self._erase_payloads(ingestion)
        # The Patient's own consents go, with their rows under its identifiers; those filed
        # only under an identifier (a consent source's, a registry's) protect every record
        # that carries it and stay.
        keys = {f"Patient/{patient_id}"} | {f"{s}|{v}" for s, v in identifiers}
        consents = self._consents.find({f"Patient/{patient_id}"})
        for consent in consents:
            self._consents.remove(consent, keys)
        resources, versions, kept = 0, 0, 0
        for row in list(self._record.compartment_all(patient_id)):
            kind, _, ident = row.partition("|")
            current = self._record.current(kind, ident)
            if current is not None and len(current.patients) > 1:
                kept += 1  # other patients' data too (an Appointment): left, and counted
                continue
            versions += self._record.erase(kind, ident)
            resources += 1
        self._people.forget(patient_id, identifiers)  # identifiers, links' other sides
        self._record.forget_patient(patient_id)
        report = PurgeReport(resources, versions, payloads, len(consents), shared, kept)
        self._audit.write(self._event(patient_id, requester, report))
        return report

    def _identifiers(self, patient_id: str) -> set[tuple[str, str]]:
        """Every identifier any version of the Patient carried."""
        found = set()
        for version in self._record.versions("Patient", patient_id):
            patient = self._record.read_version("Patient", patient_id, version) or {}
            for identifier in patient.get("identifier") or ():
                if identifier.get("system") and identifier.get("value"):
                    found.add((str(identifier["system"]), str(identifier["value"])))
        return found

    def _erase_payloads(self, ingestion: IngestionRef) -> int:
        deleted = 0
        if ingestion.raw:
            container, _, name = ingestion.raw.partition("/")
            if container in Container._value2member_map_:
                deleted += self._blobs.delete(Container(container), name)
        if ingestion.normalized:
            deleted += self._blobs.delete(Container.NORMALIZED, ingestion.normalized)
            prefix = ingestion.normalized.removesuffix(".json")
            deleted += self._blobs.delete_prefix(Container.QUARANTINE, f"{prefix}/")
        if ingestion.quarantine:
            permitted = f"{ingestion.quarantine}.permitted.json"
            deleted += self._blobs.delete(Container.NORMALIZED, permitted)
            deleted += self._blobs.delete_prefix(Container.QUARANTINE, f"{ingestion.quarantine}/")
        return deleted

    def _event(self, patient_id: str, requester: Actor, report: PurgeReport) -> dict[str, Any]:
        now = self._clock()
        who: dict[str, Any] = (
            {"reference": sorted(requester.references)[0]}
            if requester.references
            else {
                "identifier": dict(
                    zip(
                        ("system", "value"),
                        sorted(requester.identifiers)[0].rsplit("|", 1),
                        strict=True,
                    )
                )
            }
        )
        counts = {
            "resources": report.resources,
            "versions": report.versions,
            "payloads": report.payloads,
            "consents": report.consents,
            "shared-payloads-kept": report.shared_payloads_kept,
            "shared-resources-kept": report.shared_resources_kept,
        }
        return {
            "resourceType": "AuditEvent",
            "id": str(uuid.uuid5(_AUDIT_NAMESPACE, f"purge|{patient_id}|{now.isoformat()}")),
            "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
            "subtype": [{"system": "urn:fhir-intake:audit-event-subtype", "code": "purge"}],
            "action": "D",
            "recorded": now.isoformat(),
            "outcome": "0",
            "agent": [{"who": who, "requestor": True}],
            "source": {"observer": {"display": "fhir-intake $purge"}},
            "entity": [
                {
                    "what": {"reference": f"Patient/{patient_id}"},
                    "type": {
                        "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                        "code": "1",
                    },
                    "role": {
                        "system": "http://terminology.hl7.org/CodeSystem/object-role",
                        "code": "1",
                    },
                    "detail": [{"type": k, "valueString": str(v)} for k, v in counts.items()],
                }
            ],
        }
