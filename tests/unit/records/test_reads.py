"""Reads on in-memory fakes: the read scope (relationship, population, break-the-glass),
which keys consent is asked with, each version judged by its own patient, and what a
deletion or a refusal looks like to the reader."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from shared.consent.models import Action, Actor, Code, ConsentDecision, DataItem, Effect
from shared.records import CurrentVersion
from shared.records.models import StoredVersion
from shared.records.people import Person
from shared.records.reads import Reader, RecordReader
from shared.security.models import Partner, Role

CLINIC = Partner(id="clinic", name="Clinic", roles=frozenset({Role.READ}))
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _reader(partner: Partner, purpose: str = "TREAT") -> Reader:
    actor = Actor(identifiers=frozenset({f"urn:fhir-intake:partner|{partner.id}"}))
    return Reader(actor, Code(None, purpose), partner.id, caller=partner)


class Store:
    def __init__(self) -> None:
        self.rows: dict[str, CurrentVersion] = {}
        self.blobs: dict[tuple[str, int], StoredVersion] = {}

    def add(
        self, resource: dict[str, Any], version: int, patient: str | None, deleted: bool = False
    ) -> None:
        ref = f"{resource['resourceType']}/{resource['id']}"
        patients = (patient,) if patient else ()
        body = {**resource, "meta": {"versionId": str(version)}}
        self.blobs[(ref, version)] = StoredVersion(body, patients, "lab")
        self.rows[ref] = CurrentVersion(version, version, T0, "h", (), patients, deleted, "c", "e")

    def current(self, resource_type: str, resource_id: str) -> CurrentVersion | None:
        return self.rows.get(f"{resource_type}/{resource_id}")

    def stored(self, resource_type: str, resource_id: str, version: int) -> StoredVersion | None:
        return self.blobs.get((f"{resource_type}/{resource_id}", version))

    def versions(self, resource_type: str, resource_id: str) -> list[int]:
        return sorted(v for (r, v) in self.blobs if r == f"{resource_type}/{resource_id}")


class Consent:
    """Permits unless a key of the request is in ``denied``; records what it was asked."""

    def __init__(self, allow: bool = True, denied: Iterable[str] = ()) -> None:
        self.allow = allow
        self.denied = set(denied)
        self.asked: list[tuple[set[str], Action, DataItem | None, str | None]] = []
        self.refused: list[tuple[str, str]] = []

    def evaluate(
        self,
        patient_keys: Iterable[str],
        action: Action,
        purpose: Code | None,
        actor: Actor | None,
        data: DataItem | None = None,
        **details: Any,
    ) -> ConsentDecision:
        keys = set(patient_keys)
        self.asked.append((keys, action, data, details.get("access")))
        permit = self.allow and not keys & self.denied
        return ConsentDecision(Effect.PERMIT if permit else Effect.DENY)

    def refuse(self, patient: str, *args: Any, **kwargs: Any) -> ConsentDecision:
        self.refused.append((patient, args[3]))
        return ConsentDecision(Effect.DENY)


class People:
    """Persons as the person index would resolve them: who sent each Patient."""

    def __init__(self, sources: dict[str, str], linked: dict[str, str] | None = None) -> None:
        self.sources = sources
        self.linked = linked or {}
        self.resolved = 0

    def asserted(self, partner_id: str, keys: Any) -> frozenset[str]:
        return frozenset(keys)  # the trust rule itself: tests/unit/records/test_people.py

    def person(self, patient_id: str, memo: MutableMapping[str, Person] | None = None) -> Person:
        if memo is not None and patient_id in memo:
            return memo[patient_id]
        self.resolved += 1
        ids = [patient_id, *([self.linked[patient_id]] if patient_id in self.linked else [])]
        found = Person(
            tuple(ids),
            sources=frozenset(self.sources[i] for i in ids if i in self.sources),
            keys=frozenset(f"Patient/{i}" for i in ids) | {"urn:oid:1.2|M1"},
        )
        if memo is not None:
            memo[patient_id] = found
        return found


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


def _records(consent: Consent, people: People | None = None, store: Store | None = None) -> Any:
    people = people or People({"p1": "clinic"})
    return RecordReader(store or _store(), consent, UTC, people)  # type: ignore[arg-type]


def test_patient_data_is_asked_about_with_every_key_of_the_whole_person() -> None:
    consent = Consent()
    people = People({"p1": "lab", "q7": "clinic"}, linked={"p1": "q7"})
    found = _records(consent, people).read(_reader(CLINIC), "Observation", "o1")
    assert found is not None and found["status"] == "amended"
    ((keys, action, data, access),) = consent.asked
    # The linked Patient of another partner counts: its consents are the person's too.
    assert keys == {"Patient/p1", "Patient/q7", "urn:oid:1.2|M1"} and action is Action.ACCESS
    assert data is not None and data.resource_type == "Observation"
    assert access == "relationship"  # the clinic sent the person's other record


def test_a_denial_reads_as_absent_and_master_data_needs_no_consent() -> None:
    consent = Consent(allow=False)
    records = _records(consent)
    assert records.read(_reader(CLINIC), "Observation", "o1") is None
    assert records.history(_reader(CLINIC), "Observation", "o1") is None
    assert records.read(_reader(CLINIC), "Organization", "org1") is not None
    assert len(consent.asked) == 3  # the two versions in history, the read; never the Organization


def test_without_a_relationship_a_patient_that_exists_reads_as_absent_and_it_is_audited() -> None:
    consent = Consent()
    records = _records(consent, People({"p1": "lab"}))  # the lab sent it; the clinic has nothing
    assert records.read(_reader(CLINIC), "Observation", "o1") is None
    assert records.read(_reader(CLINIC), "Patient", "p1") is None
    assert records.history(_reader(CLINIC), "Observation", "o1") is None
    assert consent.asked == []  # refused before consent is asked...
    assert {p for p, _ in consent.refused} == {"Patient/p1"}  # ...and the refusal is recorded
    assert "no relationship" in consent.refused[0][1]


def test_a_person_registered_to_the_reader_is_readable() -> None:
    class Registered(People):
        def person(self, patient_id: str, memo: Any = None) -> Person:
            found = super().person(patient_id, memo)
            return Person(found.patients, found.sources, frozenset({"clinic"}), keys=found.keys)

    consent = Consent()
    assert (
        _records(consent, Registered({"p1": "lab"})).read(_reader(CLINIC), "Patient", "p1")
        is not None
    )


def test_population_and_operators_read_anyone_break_the_glass_only_with_grant_and_purpose() -> None:
    people = People({"p1": "lab"})
    population = Partner(id="moh", name="MoH", roles=frozenset({Role.POPULATION}))
    operator = Partner(id="ops", name="Ops", roles=frozenset({Role.ADMIN}))
    er = Partner(id="er", name="ER", roles=frozenset({Role.READ, Role.BREAK_GLASS}))
    consent = Consent()
    records = _records(consent, people)
    assert records.read(_reader(population), "Patient", "p1") is not None
    assert records.read(_reader(operator, "HOPERAT"), "Patient", "p1") is not None
    assert records.read(_reader(er), "Patient", "p1") is None  # TREAT: no emergency stated
    assert records.read(_reader(er, "ETREAT"), "Patient", "p1") is not None
    assert records.read(_reader(CLINIC, "ETREAT"), "Patient", "p1") is None  # not granted
    assert [a for *_, a in consent.asked] == ["population", "population", "break-the-glass"]


def test_each_version_is_judged_by_its_own_patient() -> None:
    # The review's MEDIUM-3: v1 was patient p9's (opted out), v2 moved to p1.
    store = _store()
    store.add(
        {**OBS, "subject": {"reference": "Patient/p9"}, "valueQuantity": {"value": 130}},
        1,
        "Patient/p9",
    )
    store.add({**OBS, "status": "amended"}, 2, "Patient/p1")
    consent = Consent(denied={"Patient/p9"})
    records = _records(consent, People({"p1": "clinic", "p9": "clinic"}), store)
    history = records.history(_reader(CLINIC), "Observation", "o1")
    assert history is not None and [r["meta"]["versionId"] for r in history] == ["2"]
    assert records.read(_reader(CLINIC), "Observation", "o1", version=1) is None
    assert {k for keys, *_ in consent.asked for k in keys if k.startswith("Patient/")} == {
        "Patient/p1",
        "Patient/p9",
    }


def test_a_resource_of_two_patients_needs_both() -> None:
    store = _store()
    appointment = {
        "resourceType": "Appointment",
        "id": "a1",
        "status": "booked",
        "participant": [
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
            {"actor": {"reference": "Patient/p2"}, "status": "accepted"},
        ],
    }
    store.add(appointment, 1, None)
    store.blobs[("Appointment/a1", 1)] = StoredVersion(appointment, ("Patient/p1", "Patient/p2"))
    people = People({"p1": "clinic", "p2": "clinic"})
    assert _records(Consent(), people, store).read(_reader(CLINIC), "Appointment", "a1") is not None
    denied = _records(Consent(denied={"Patient/p2"}), people, store)
    assert denied.read(_reader(CLINIC), "Appointment", "a1") is None


def test_a_person_is_resolved_once_per_request() -> None:
    people = People({"p1": "clinic"})
    records = _records(Consent(), people)
    reader = _reader(CLINIC)
    records.history(reader, "Observation", "o1")
    records.read(reader, "Patient", "p1")
    assert people.resolved == 1


def test_deleted_resources_read_as_absent_but_their_history_shows_the_deletion() -> None:
    store = _store()
    store.blobs[("Observation/o1", 3)] = StoredVersion(
        {"resourceType": "Observation", "id": "o1", "meta": {"versionId": "3"}}, ()
    )
    store.rows["Observation/o1"] = CurrentVersion(
        3, 3, T0, "h", (), ("Patient/p1",), True, "c", "e"
    )
    records = _records(Consent(), store=store)
    assert records.read(_reader(CLINIC), "Observation", "o1") is None
    assert records.read(_reader(CLINIC), "Observation", "o1", version=1) is not None
    history = records.history(_reader(CLINIC), "Observation", "o1")
    assert history is not None and [r["meta"]["versionId"] for r in history] == ["3", "2", "1"]
