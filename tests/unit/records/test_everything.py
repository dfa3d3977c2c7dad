"""$everything on fakes: one person across the Patients the person index links (its own
rules: tests/unit/records/test_people.py), pages that resume where they stopped, and a
withheld Patient, or one the caller has no way to, that reads as absent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest

from shared.consent.models import Actor, Code
from shared.records.everything import Everything, PatientEverything, parse_everything
from shared.records.people import Person
from shared.records.reads import Reader
from shared.records.search_params import SearchError
from shared.security.trust import Access

READER = Reader(Actor(identifiers=frozenset({"urn:fhir-intake:partner|c"})), Code(None, "TREAT"))
GLOBAL = {"system": "urn:oid:1.2.3", "value": "P-1"}
LOCAL = {"system": "urn:fhir-intake:partner:lab:cs:MR", "value": "7"}


class Index:
    def __init__(self) -> None:
        self.rows = {
            "a": ["Observation|oa1", "Observation|oa2", "Patient|a"],
            "b": ["Observation|ob1", "Patient|b"],
            "m": ["Patient|m"],
        }

    def compartment_all(self, patient_id: str, after: str | None = None) -> Iterator[str]:
        yield from (r for r in self.rows.get(patient_id, []) if after is None or r > after)


class Reads:
    """Reads that hide some resources; the person of "a" is a, b (linked) and m (merged)."""

    def __init__(
        self,
        hidden: set[str] = frozenset(),  # type: ignore[assignment]
        people: tuple[str, ...] = ("a", "b", "m"),
        access: Access = Access.RELATIONSHIP,
    ) -> None:
        self.hidden = hidden
        self.people = people
        self.access = access

    def person(self, reader: Reader, patient_id: str) -> tuple[Person, Access]:
        return Person(self.people), self.access

    def read(
        self, reader: Reader, kind: str, ident: str, version: int | None = None
    ) -> dict[str, Any] | None:
        if f"{kind}/{ident}" in self.hidden:
            return None
        resource: dict[str, Any] = {
            "resourceType": kind,
            "id": ident,
            "meta": {"lastUpdated": "2026-03-01T00:00:00Z"},
        }
        if kind == "Patient" and ident == "a":
            resource["identifier"] = [GLOBAL, LOCAL]
        return resource


def _all(service: PatientEverything, patient: str, count: int) -> list[str]:
    found, page = [], None
    while True:
        result = service.run(READER, Everything(patient, count=count, page=page))
        assert result is not None
        found += [f"{r['resourceType']}/{r['id']}" for r in result.resources]
        if not result.next_page:
            return found
        page = result.next_page


def test_every_patient_of_the_person_paged_without_loss() -> None:
    service = PatientEverything(Index(), Reads())  # type: ignore[arg-type]
    expected = [
        "Observation/oa1",
        "Observation/oa2",
        "Patient/a",
        "Observation/ob1",
        "Patient/b",
        "Patient/m",
    ]
    for count in (1, 2, 3, 50):
        assert _all(service, "a", count) == expected


def test_returned_patients_link_to_the_persons_other_records() -> None:
    service = PatientEverything(Index(), Reads())  # type: ignore[arg-type]
    page = service.run(READER, Everything("a"))
    assert page is not None
    patient_a = next(r for r in page.resources if r["id"] == "a")
    assert {k["other"]["reference"] for k in patient_a["link"]} == {"Patient/b", "Patient/m"}
    alone = PatientEverything(Index(), Reads(people=("a",)))  # type: ignore[arg-type]
    assert _all(alone, "a", 50) == ["Observation/oa1", "Observation/oa2", "Patient/a"]


def test_a_caller_with_no_way_to_the_person_gets_what_an_unknown_patient_gets() -> None:
    service = PatientEverything(Index(), Reads(access=Access.NONE))  # type: ignore[arg-type]
    assert service.run(READER, Everything("a")) is None


def test_withheld_resources_are_left_out_and_a_withheld_patient_is_absent() -> None:
    service = PatientEverything(Index(), Reads(hidden={"Observation/oa2"}))  # type: ignore[arg-type]
    assert "Observation/oa2" not in _all(service, "a", 2)
    hidden = PatientEverything(Index(), Reads(hidden={"Patient/a"}))  # type: ignore[arg-type]
    assert hidden.run(READER, Everything("a")) is None


def test_parameters() -> None:
    asked = parse_everything("a", {"_since": ["2026-03-01"], "_count": ["500"]})
    assert asked.since is not None and asked.since.tzinfo is UTC and asked.count == 200
    with pytest.raises(SearchError, match="not _type"):
        parse_everything("a", {"_type": ["Observation"]})
    with pytest.raises(SearchError, match="page token"):
        PatientEverything(Index(), Reads()).run(READER, Everything("a", page="%%%"))  # type: ignore[arg-type]
