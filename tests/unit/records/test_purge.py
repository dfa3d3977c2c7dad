"""Erasing one Patient on fakes: what goes, and what stays because other records rely on
it (a registry's consent filed under an identifier, a resource of several patients)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from shared.consent.models import Actor
from shared.records import CurrentVersion
from shared.records.purge import Purger

from .fakes import Audit

T0 = datetime(2026, 12, 1, tzinfo=UTC)
MRN = ("urn:oid:1.2", "M1")


def _row(*patients: str) -> CurrentVersion:
    return CurrentVersion(1, 1, T0, "h", (), patients, False, "c", "e", source="lab")


class Record:
    def __init__(self) -> None:
        self.rows = {
            "Observation|o1": _row("Patient/p1"),
            "Appointment|a1": _row("Patient/p1", "Patient/p2"),
            "Patient|p1": _row("Patient/p1"),
        }
        self.erased: list[str] = []
        self.forgot: list[str] = []

    def compartment_all(self, patient_id: str, after: str | None = None) -> Iterable[str]:
        return sorted(self.rows)

    def ingestions_of(self, patient_id: str) -> list[Any]:
        return []

    def versions(self, resource_type: str, resource_id: str) -> list[int]:
        return [1] if resource_type == "Patient" else []

    def read_version(self, resource_type: str, resource_id: str, version: int) -> dict[str, Any]:
        return {
            "resourceType": "Patient",
            "id": "p1",
            "identifier": [dict(zip(("system", "value"), MRN, strict=True))],
        }

    def current(self, resource_type: str, resource_id: str) -> CurrentVersion | None:
        return self.rows.get(f"{resource_type}|{resource_id}")

    def erase(self, resource_type: str, resource_id: str) -> int:
        self.erased.append(f"{resource_type}/{resource_id}")
        return 1

    def forget_patient(self, patient_id: str) -> None:
        self.forgot.append(patient_id)


class Consents:
    """The patient's own consent (under Patient/p1 and the MRN) and a registry's (MRN only)."""

    def __init__(self) -> None:
        self.kept = {"own": {"Patient/p1", "urn:oid:1.2|M1"}, "registry": {"urn:oid:1.2|M1"}}

    def find(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        return [{"id": c} for c, under in self.kept.items() if under & set(keys)]

    def remove(self, consent: dict[str, Any], keys: Iterable[str]) -> None:
        self.kept[consent["id"]] -= set(keys)
        if not self.kept[consent["id"]]:
            del self.kept[consent["id"]]


class Blobs:
    def delete(self, container: Any, name: str) -> bool:
        return True

    def delete_prefix(self, container: Any, prefix: str) -> int:
        return 0


class People:
    def __init__(self) -> None:
        self.forgot: list[tuple[str, set[tuple[str, str]]]] = []

    def forget(self, patient_id: str, identifiers: Iterable[tuple[str, str]]) -> None:
        self.forgot.append((patient_id, set(identifiers)))


def test_a_purge_keeps_what_other_records_rely_on_and_says_so() -> None:
    record, consents, people, audit = Record(), Consents(), People(), Audit()
    purger = Purger(record, consents, Blobs(), audit, people, clock=lambda: T0)  # type: ignore[arg-type]
    report = purger.purge("p1", Actor(identifiers=frozenset({"urn:fhir-intake:partner|ops"})))
    assert sorted(record.erased) == ["Observation/o1", "Patient/p1"]
    assert (report.resources, report.shared_resources_kept, report.consents) == (2, 1, 1)
    assert consents.kept == {"registry": {"urn:oid:1.2|M1"}}  # a registry's entry stays
    assert people.forgot == [("p1", {MRN})] and record.forgot == ["p1"]
    (event,) = audit.events
    details = {d["type"]: d["valueString"] for d in event["entity"][0]["detail"]}
    assert details["shared-resources-kept"] == "1" and "M1" not in str(event)
