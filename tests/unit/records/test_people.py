"""Persons across partners on an in-memory person index: which Patients the trust model
links (and audits), links that end when an identifier or an authority goes, merges within
a partner, unlinks, and what a person says about sources, relationships and keys."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared.records.people import IdentifierHolder, Link, People, PersonRows, identifier_hash
from shared.security.models import Partner, Role
from shared.security.trust import TrustPolicy

from .fakes import Audit

A_MRN = "urn:oid:2.16.840.1.113883.3.999"
STATE = "urn:oid:2.16.840.1.113883.4.1.77"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


class Index:
    """The identifiers table and the partitions' person rows, in memory."""

    def __init__(self) -> None:
        self.identifiers: dict[tuple[str, str], dict[str, str]] = {}  # (sys, val) -> id: partner
        self.links: dict[str, dict[str, Link]] = {}
        self.related: dict[str, set[str]] = {}
        self.sources: dict[str, set[str]] = {}
        self.unlinked: dict[str, set[str]] = {}

    def index_identifiers(self, patient: Mapping[str, Any], partner: str) -> None:
        for i in patient.get("identifier") or ():
            self.identifiers.setdefault((i["system"], i["value"]), {})[patient["id"]] = partner
        self.sources.setdefault(patient["id"], set()).add(partner)

    def holders(self, system: str, value: str) -> list[IdentifierHolder]:
        found = self.identifiers.get((system, value), {})
        return [IdentifierHolder(p, partner) for p, partner in sorted(found.items())]

    def rows(self, patient_id: str) -> PersonRows:
        return PersonRows(
            tuple(self.links.get(patient_id, {}).values()),
            frozenset(self.related.get(patient_id, set())),
            frozenset(self.sources.get(patient_id, set())),
            frozenset(self.unlinked.get(patient_id, set())),
        )

    def add_link(self, link: Link, made: datetime, correlation_id: str) -> bool:
        new = link.other_id not in self.links.get(link.patient_id, {})
        self.links.setdefault(link.patient_id, {})[link.other_id] = link
        back = Link(link.other_id, link.patient_id, link.system, link.key, link.partners)
        self.links.setdefault(link.other_id, {})[link.patient_id] = back
        return new


class Patients:
    def __init__(self) -> None:
        self.current: dict[str, dict[str, Any]] = {}

    def current_patient(self, patient_id: str) -> dict[str, Any] | None:
        return self.current.get(patient_id)


PARTNERS = {
    "hosp-a": Partner(id="hosp-a", name="A", authorities=frozenset({A_MRN})),
    "clinic-a2": Partner(id="clinic-a2", name="A2", authorities=frozenset({A_MRN})),
    "evil-b": Partner(id="evil-b", name="B", roles=frozenset({Role.INGEST, Role.READ})),
}


class World:
    def __init__(self, link_systems: frozenset[str] = frozenset()) -> None:
        self.index, self.patients, self.audit = Index(), Patients(), Audit()
        self.partners = dict(PARTNERS)
        self.people = People(
            self.index,
            self.patients,
            self.partners.get,
            TrustPolicy(link_systems=link_systems),
            self.audit,  # type: ignore[arg-type]
            clock=lambda: NOW,
            refresh_seconds=0,  # registrations read afresh: the tests change them
        )

    def store(self, pid: str, partner: str, *identifiers: tuple[str, str], **more: Any) -> int:
        patient = {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [{"system": s, "value": v} for s, v in identifiers],
            **more,
        }
        self.patients.current[pid] = patient
        return self.people.link(patient, partner, "ing-1")

    def person(self, pid: str) -> tuple[str, ...]:
        return self.people.person(pid).patients


def test_a_claim_on_another_partners_mrn_links_nothing() -> None:
    # The review's HIGH-3: B's Patient carries A's patient's OID-qualified MRN.
    world = World()
    assert world.store("pa", "hosp-a", (A_MRN, "AMRN66")) == 0
    assert world.store("pb", "evil-b", (A_MRN, "AMRN66"), ("urn:oid:9.9.9", "EVILX")) == 0
    assert world.person("pa") == ("pa",) and world.person("pb") == ("pb",)
    assert world.audit.events == []


def test_two_authorities_of_one_mrn_space_link_and_the_link_is_audited() -> None:
    world = World()
    world.store("pa", "hosp-a", (A_MRN, "M1"))
    assert world.store("pa2", "clinic-a2", (A_MRN, "M1")) == 1
    assert world.person("pa") == ("pa", "pa2") and world.person("pa2") == ("pa2", "pa")
    person = world.people.person("pa")
    assert person.sources == {"hosp-a", "clinic-a2"}
    ((link),) = person.links
    assert (link.system, link.key) == (A_MRN, identifier_hash(A_MRN, "M1"))
    assert set(link.partners) == {"hosp-a", "clinic-a2"}
    assert "Patient/pa" in person.keys and "Patient/pa2" in person.keys
    assert f"{A_MRN}|M1" in person.keys
    (event,) = world.audit.events
    assert event["subtype"][0]["code"] == "patient-link"
    assert "M1" not in str(event)  # the identifier's system, never its value
    assert world.store("pa2", "clinic-a2", (A_MRN, "M1")) == 0  # resent: no second event


def test_a_deployment_linking_system_links_any_partners() -> None:
    world = World(link_systems=frozenset({STATE}))
    world.store("pa", "hosp-a", (STATE, "S-1"))
    assert world.store("pb", "evil-b", (STATE, "S-1")) == 1
    assert world.person("pb") == ("pb", "pa")
    assert World().store("pb", "evil-b", (STATE, "S-1")) == 0  # not a linking system there


def test_a_partners_own_patients_link_on_its_own_systems_never_on_an_ssn() -> None:
    world = World()
    own = "urn:fhir-intake:partner:evil-b:cs:MR"
    world.store("b1", "evil-b", ("http://hl7.org/fhir/sid/us-ssn", "999999999"), (own, "1"))
    # Another patient with the same placeholder SSN is not the same person...
    assert world.store("b2", "evil-b", ("http://hl7.org/fhir/sid/us-ssn", "999999999")) == 0
    assert world.person("b1") == ("b1",)
    # ...and the partner's FHIR record of its HL7 patient (same local MRN) is.
    assert world.store("b3", "evil-b", (own, "1")) == 1
    assert world.person("b1") == ("b1", "b3")


def test_an_identifier_counts_for_the_person_only_where_its_sender_asserts_it() -> None:
    # hosp-a records its patient's number at another partner (a PID-3 repeat): that
    # partner's authority is not hosp-a's, so its consents filed under the number never
    # reach hosp-a's patient, and the two never link.
    world = World()
    world.partners["evil-b"] = PARTNERS["evil-b"].model_copy(
        update={"authorities": frozenset({"urn:oid:3.777"})}
    )
    world.store("pa", "hosp-a", (A_MRN, "AMRN55"), ("urn:oid:3.777", "B0042"))
    keys = world.people.person("pa").keys
    assert f"{A_MRN}|AMRN55" in keys and "urn:oid:3.777|B0042" not in keys
    assert world.people.asserted("evil-b", {"urn:oid:3.777|B0042", f"{A_MRN}|X"}) == {
        "urn:oid:3.777|B0042"
    }


def test_a_person_larger_than_is_followed_says_so() -> None:
    from shared.records.people import MAX_PEOPLE

    world = World(link_systems=frozenset({STATE}))
    for n in range(MAX_PEOPLE + 2):
        world.store(f"p{n:03d}", "hosp-a", (STATE, "S-1"))
    person = world.people.person("p000")
    assert len(person.patients) == MAX_PEOPLE and person.truncated
    assert not World().people.person("nobody").truncated


def test_a_link_ends_when_its_identifier_or_an_authority_goes() -> None:
    world = World()
    world.store("pa", "hosp-a", (A_MRN, "M1"))
    world.store("pa2", "clinic-a2", (A_MRN, "M1"))
    world.patients.current["pa2"]["identifier"] = []  # a corrected Patient, without it
    assert world.person("pa") == ("pa",)
    world.patients.current["pa2"]["identifier"] = [{"system": A_MRN, "value": "M1"}]
    assert world.person("pa") == ("pa", "pa2")
    world.partners["clinic-a2"] = PARTNERS["clinic-a2"].model_copy(
        update={"authorities": frozenset()}
    )
    assert world.person("pa") == ("pa",)  # the operator took the authority away


def test_an_unlink_keeps_two_apart_and_links_are_followed_transitively() -> None:
    world = World(link_systems=frozenset({STATE}))
    world.store("pa", "hosp-a", (A_MRN, "M1"))
    world.store("pa2", "clinic-a2", (A_MRN, "M1"), (STATE, "S-1"))
    world.store("pb", "evil-b", (STATE, "S-1"))
    assert world.person("pa") == ("pa", "pa2", "pb")
    world.index.unlinked = {"pa2": {"pb"}, "pb": {"pa2"}}
    assert world.person("pa") == ("pa", "pa2")


def test_a_merge_joins_the_same_partners_patients_only() -> None:
    world = World()
    world.store("old", "evil-b", ("urn:fhir-intake:partner:evil-b:cs:MR", "1"))
    world.store(
        "new",
        "evil-b",
        ("urn:fhir-intake:partner:evil-b:cs:MR", "2"),
        link=[{"other": {"reference": "Patient/old"}, "type": "replaces"}],
    )
    assert world.person("new") == ("new", "old")
    world.store("victim", "hosp-a", (A_MRN, "AMRN88"))
    world.store(
        "b", "evil-b", link=[{"other": {"reference": "Patient/victim"}, "type": "replaces"}]
    )
    assert world.person("b") == ("b",)  # CRITICAL-2's A40: never across partners


def test_relationships_and_sources_come_from_every_patient_of_the_person() -> None:
    world = World()
    world.store("pa", "hosp-a", (A_MRN, "M1"))
    world.store("pa2", "clinic-a2", (A_MRN, "M1"))
    world.index.related["pa2"] = {"reader-c"}
    person = world.people.person("pa")
    assert person.related == {"reader-c"} and person.owners == {"hosp-a"}


def test_a_patient_not_stored_yet_counts_with_its_sender() -> None:
    world = World()
    known = {"new": ({"resourceType": "Patient", "id": "new", "identifier": []}, "hosp-a")}
    person = world.people.person("new", known=known)
    assert person.sources == {"hosp-a"} and person.owners == frozenset()


def test_partner_registrations_are_read_once_per_refresh() -> None:
    reads: list[str] = []

    def lookup(partner_id: str) -> Partner | None:
        reads.append(partner_id)
        return PARTNERS.get(partner_id)

    people = People(Index(), Patients(), lookup, TrustPolicy(), refresh_seconds=60)
    for n in range(5):
        patient = {"resourceType": "Patient", "identifier": [{"system": A_MRN, "value": f"M{n}"}]}
        people.person(f"p{n}", known={f"p{n}": (patient, "hosp-a")})
    assert reads == ["hosp-a"]  # a batch of 5 persons: one read of the sender
