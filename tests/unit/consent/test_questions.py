"""Who may ask for a consent decision about whom (the review's LOW-2: any read partner
learned whether any identifier had consents or a registry opt-out)."""

from __future__ import annotations

import pytest

from shared.consent.errors import QuestionForbiddenError
from shared.consent.models import Actor, Code
from shared.consent.questions import QuestionGate
from shared.records.people import Person
from shared.security.models import Partner, Role

TREAT = Code("http://terminology.hl7.org/CodeSystem/v3-ActReason", "TREAT")
ETREAT = Code("http://terminology.hl7.org/CodeSystem/v3-ActReason", "ETREAT")
MRN = "urn:oid:2.16.840.1.113883.19.5|MRN-1"


class People:
    """p1 was sent by the hospital and is registered to the clinic; p9 to nobody."""

    def person(self, patient_id: str) -> Person:
        if patient_id == "p1":
            return Person(("p1",), frozenset({"hospital"}), frozenset({"clinic"}))
        return Person((patient_id,), frozenset({"other"}))


def gate() -> QuestionGate:
    return QuestionGate(
        People(), lambda system, value: ["p1"] if f"{system}|{value}" == MRN else []
    )


def partner(ident: str, *roles: Role) -> Partner:
    return Partner(id=ident, name=ident, roles=frozenset(roles or {Role.READ}))


def test_a_care_team_asks_about_its_own_patients_by_id_or_identifier() -> None:
    clinic = partner("clinic")
    gate().check(clinic, ["Patient/p1"], TREAT, None)
    gate().check(clinic, [MRN], TREAT, Actor(references=frozenset({"Practitioner/dr-1"})))
    gate().check(clinic, ["2.16.840.1.113883.19.5|MRN-1"], TREAT, None)  # a bare OID too


@pytest.mark.parametrize(
    "keys",
    [["Patient/p9"], ["Patient/nobody"], ["urn:oid:1.2|unknown"], ["Patient/p1", "Patient/p9"]],
)
def test_out_of_reach_and_unknown_read_the_same(keys: list[str]) -> None:
    with pytest.raises(QuestionForbiddenError) as refused:
        gate().check(partner("clinic"), keys, TREAT, None)
    assert str(refused.value).startswith("you may ask only about persons you may read")


def test_another_partner_may_not_be_named_as_the_actor() -> None:
    hospital = Actor(identifiers=frozenset({"urn:fhir-intake:partner|hospital"}))
    with pytest.raises(QuestionForbiddenError):
        gate().check(partner("clinic"), ["Patient/p1"], TREAT, hospital)
    gate().check(partner("ops", Role.ADMIN), ["Patient/p1"], TREAT, hospital)


def test_population_and_break_the_glass_reach_as_far_as_their_reads() -> None:
    registry = partner("moh", Role.READ, Role.POPULATION)
    gate().check(registry, ["Patient/p9", "urn:oid:1.2|unknown"], TREAT, None)
    emergency = partner("er", Role.READ, Role.BREAK_GLASS)
    gate().check(emergency, ["Patient/p9"], ETREAT, None)
    with pytest.raises(QuestionForbiddenError):
        gate().check(emergency, ["Patient/p9"], TREAT, None)
    with pytest.raises(QuestionForbiddenError):
        gate().check(emergency, ["urn:oid:1.2|unknown"], ETREAT, None)
