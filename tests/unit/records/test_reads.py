"""Consent-filtered reads on in-memory fakes: who is asked, with which keys, and what a
deletion or a denial looks like to the reader."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from shared.consent.models import Action, Actor, Code, ConsentDecision, DataItem, Effect
from shared.records import CurrentVersion
from shared.records.reads import Reader, RecordReader

READER = Reader(
    Actor(identifiers=frozenset({"urn:fhir-intake:partner|clinic"})), Code(None, "TREAT")
)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


class Store:
    def __init__(self) -> None:
        self.rows: dict[str, CurrentVersion] = {}
        self.blobs: dict[tuple[str, int], dict[str, Any]] = {}

    def add(
        self, resource: dict[str, Any], version: int, patient: str | None, deleted: bool = False
    ) -> None:
        ref = f"{resource['resourceType']}/{resource['id']}"
        self.blobs[(ref, version)] = {**resource, "meta": {"versionId": str(version)}}
        self.rows[ref] = CurrentVersion(version, version, T0, "h", (), patient, deleted, "c", "e")

    def current(self, resource_type: str, resource_id: str) -> CurrentVersion | None:
        return self.rows.get(f"{resource_type}/{resource_id}")

    def read_version(
        self, resource_type: str, resource_id: str, version: int
    ) -> dict[str, Any] | None:
        return self.blobs.get((f"{resource_type}/{resource_id}", version))

    def versions(self, resource_type: str, resource_id: str) -> list[int]:
        return sorted(v for (r, v) in self.blobs if r == f"{resource_type}/{resource_id}")


class Consent:
    def __init__(self, allow: bool) -> None:
        self.allow = allow
        self.asked: list[tuple[set[str], Action, DataItem | None]] = []

    def evaluate(
        self,
        patient_keys: Iterable[str],
        action: Action,
        purpose: Code | None,
        actor: Actor | None,
        data: DataItem | None = None,
        resource: str | None = None,
        observer: str = "",
        requester: Actor | None = None,
    ) -> ConsentDecision:
        self.asked.append((set(patient_keys), action, data))
        return ConsentDecision(Effect.PERMIT if self.allow else Effect.DENY)


PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [{"system": "urn:oid:1.2", "value": "M1"}],
}
OBS = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"text": "hr"},
    "subject": {"reference": "Patient/p1"},
}


def _store() -> Store:
    store = Store()
    store.add(PATIENT, 1, "Patient/p1")
    store.add(OBS, 1, "Patient/p1")
    store.add({**OBS, "status": "amended"}, 2, "Patient/p1")
    store.add({"resourceType": "Organization", "id": "org1", "name": "Lab"}, 1, None)
    return store


def test_patient_data_is_asked_about_with_the_patients_reference_and_identifiers() -> None:
    consent = Consent(allow=True)
    reader = RecordReader(_store(), consent, UTC)  # type: ignore[arg-type]
    found = reader.read(READER, "Observation", "o1")
    assert found is not None and found["status"] == "amended"
    ((keys, action, data),) = consent.asked
    assert keys == {"Patient/p1", "urn:oid:1.2|M1"} and action is Action.ACCESS
    assert data is not None and data.resource_type == "Observation"


def test_a_denial_reads_as_absent_and_master_data_needs_no_consent() -> None:
    consent = Consent(allow=False)
    reader = RecordReader(_store(), consent, UTC)  # type: ignore[arg-type]
    assert reader.read(READER, "Observation", "o1") is None
    assert reader.history(READER, "Observation", "o1") is None
    assert reader.read(READER, "Organization", "org1") is not None
    assert len(consent.asked) == 3  # the two versions in history, the read; never the Organization


def test_deleted_resources_read_as_absent_but_their_history_shows_the_deletion() -> None:
    store = _store()
    store.blobs[("Observation/o1", 3)] = {
        "resourceType": "Observation",
        "id": "o1",
        "meta": {"versionId": "3"},
    }
    store.rows["Observation/o1"] = CurrentVersion(3, 3, T0, "h", (), "Patient/p1", True, "c", "e")
    reader = RecordReader(store, Consent(allow=True), UTC)  # type: ignore[arg-type]
    assert reader.read(READER, "Observation", "o1") is None
    assert reader.read(READER, "Observation", "o1", version=1) is not None
    history = reader.history(READER, "Observation", "o1")
    assert history is not None and [r["meta"]["versionId"] for r in history] == ["3", "2", "1"]
