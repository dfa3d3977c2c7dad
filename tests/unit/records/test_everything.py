"""$everything on fakes: one person across Patients linked by a global identifier only,
pages that resume where they stopped, and a withheld Patient that reads as absent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest

from shared.consent.models import Actor, Code
from shared.records.everything import Everything, PatientEverything, parse_everything
from shared.records.reads import Reader
from shared.records.search_params import SearchError

READER = Reader(Actor(identifiers=frozenset({"urn:fhir-intake:partner|c"})), Code(None, "TREAT"))
GLOBAL = {"system": "urn:oid:1.2.3", "value": "P-1"}
LOCAL = {"system": "urn:fhir-intake:partner:lab:cs:MR", "value": "7"}


class Index:
    def __init__(self) -> None:
        self.rows = {
            "a": ["Observation|oa1", "Observation|oa2", "Patient|a"],
            "b": ["Observation|ob1", "Patient|b"],
            "c": ["Patient|c"],
        }
        self.ids = {("urn:oid:1.2.3", "P-1"): ["a", "b"], (LOCAL["system"], "7"): ["a", "c"]}
        self.rows["m"] = ["Patient|m"]
        self.apart: dict[str, set[str]] = {}

    def compartment_all(self, patient_id: str, after: str | None = None) -> Iterator[str]:
        yield from (r for r in self.rows.get(patient_id, []) if after is None or r > after)

    def patients_with_identifier(self, system: str, value: str) -> list[str]:
        return self.ids.get((system, value), [])

    def current_patient(self, patient_id: str) -> dict[str, Any] | None:
        patient: dict[str, Any] = {"resourceType": "Patient", "id": patient_id}
        if patient_id == "a":
            patient["identifier"] = [GLOBAL, LOCAL]
        if patient_id == "b":  # an ADT merge made "b" the survivor of "m"
            patient["link"] = [{"other": {"reference": "Patient/m"}, "type": "replaces"}]
        return patient

    def unlinked(self, patient_id: str) -> set[str]:
        return self.apart.get(patient_id, set())


class Reads:
    def __init__(self, hidden: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.hidden = hidden

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


def test_linked_by_a_global_identifier_or_a_merge_and_paged_without_loss() -> None:
    service = PatientEverything(Index(), Reads())  # type: ignore[arg-type]
    expected = [
        "Observation/oa1",
        "Observation/oa2",
        "Patient/a",
        "Observation/ob1",
        "Patient/b",
        "Patient/m",  # merged into b: followed from b's Patient.link
    ]
    for count in (1, 2, 3, 50):
        assert _all(service, "a", count) == expected  # "c" shares only a local identifier


def test_returned_patients_link_to_the_persons_other_records_and_unlink_separates() -> None:
    index = Index()
    service = PatientEverything(index, Reads())  # type: ignore[arg-type]
    page = service.run(READER, Everything("a"))
    assert page is not None
    patient_a = next(r for r in page.resources if r["id"] == "a")
    assert {k["other"]["reference"] for k in patient_a["link"]} == {"Patient/b", "Patient/m"}
    index.apart = {"a": {"b"}, "b": {"a"}}
    assert _all(service, "a", 50) == ["Observation/oa1", "Observation/oa2", "Patient/a"]


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
