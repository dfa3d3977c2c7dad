"""Subscription criteria: FHIR search-style filters matched against one resource."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.notify.criteria import parse_criteria
from shared.notify.errors import SubscriptionInvalidError

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def heart_rate(value: object, code: str = "/min") -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "id": "hr-1",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": value, "unit": "beats/minute", "system": UCUM, "code": code},
    }


def encounter(klass: str = "IMP") -> dict[str, object]:
    return {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": klass},
        "subject": {"reference": "Patient/p1"},
    }


@pytest.mark.parametrize(
    ("criteria", "value", "expected"),
    [
        ("gt120", 121, True),
        ("gt120", 120, False),
        ("ge120", 120, True),
        ("lt50", 49.9, True),
        ("le50", 50.1, False),
        ("eq100", 100.4, True),  # eq keeps the precision written: 100 covers [99.5, 100.5)
        ("eq100", 100.5, False),
        ("eq100.0", 100.04, True),
        ("eq100.0", 100.06, False),
        ("ne100", 101, True),
        ("120", 120.2, True),  # no prefix is eq
        ("gt120|http://unitsofmeasure.org|/min", 130, True),
        ("gt120|http://unitsofmeasure.org|/h", 130, False),  # another unit never matches
        ("gt120||/min", 130, True),
        ("gt120", True, False),  # a boolean is not a number
        ("gt120", "oops", False),
    ],
)
def test_value_quantity_thresholds(criteria: str, value: object, expected: bool) -> None:
    parsed = parse_criteria(f"Observation?code={LOINC}|8867-4&value-quantity={criteria}")
    assert parsed.matches(heart_rate(value)) is expected


def test_code_must_match_too() -> None:
    parsed = parse_criteria(f"Observation?code={LOINC}|8867-4&value-quantity=gt120")
    other = heart_rate(180)
    other["code"] = {"coding": [{"system": LOINC, "code": "8480-6"}]}
    assert not parsed.matches(other)
    assert parsed.matches(heart_rate(180))


def test_tokens_with_and_without_system() -> None:
    assert parse_criteria("Encounter?class=IMP").matches(encounter("IMP"))
    assert not parse_criteria("Encounter?class=IMP").matches(encounter("AMB"))
    assert parse_criteria("Encounter?class=AMB,IMP").matches(encounter("AMB"))  # comma: OR
    act = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
    assert parse_criteria(f"Encounter?class={act}|IMP").matches(encounter())
    assert not parse_criteria("Encounter?class=http://other|IMP").matches(encounter())
    assert not parse_criteria("Encounter?class=|IMP").matches(encounter())  # |code: no system
    assert parse_criteria("Encounter?status=in-progress").matches(encounter())


def test_repeated_parameters_are_and() -> None:
    both = parse_criteria("Encounter?class=IMP&status=finished")
    assert not both.matches(encounter())


def test_identifier_and_patient_references() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "urn:oid:1.2.3", "value": "MRN-7"}],
    }
    assert parse_criteria("Patient?identifier=urn:oid:1.2.3|MRN-7").matches(patient)
    assert not parse_criteria("Patient?identifier=urn:oid:1.2.3|MRN-8").matches(patient)
    assert parse_criteria("Encounter?patient=Patient/p1").matches(encounter())
    assert parse_criteria("Encounter?subject=p1").matches(encounter())
    assert not parse_criteria("Encounter?patient=p2").matches(encounter())
    assert parse_criteria("Encounter?_id=e1").matches(encounter())


def test_other_types_never_match() -> None:
    assert not parse_criteria("Observation").matches(encounter())
    assert parse_criteria("Encounter").matches(encounter())


@pytest.mark.parametrize(
    ("criteria", "complaint"),
    [
        ("encounter?class=IMP", "resource type"),
        ("Encounter?name=Smith", "cannot be filtered by 'name'"),
        ("Encounter?class:not=IMP", "cannot be filtered by 'class:not'"),
        ("Encounter?value-quantity=gt1", "cannot be filtered by 'value-quantity'"),
        ("Observation?value-quantity=sa120", "value-quantity is"),
        ("Observation?code=", "has no value"),
        ("Observation?code=http://loinc.org|", "needs a code"),
        ("Observation?code", "name=value"),
        # The review's MEDIUM-1: this one was accepted and raised in every match after.
        ("Observation?value-quantity=gt1e999999999", "between 1e-100 and 1e100"),
        ("Observation?value-quantity=eq1e-999999999", "between 1e-100 and 1e100"),
        ("Observation?value-quantity=lt" + "9" * 41, "at most 40 digits"),
    ],
)
def test_refused_with_the_reason(criteria: str, complaint: str) -> None:
    with pytest.raises(SubscriptionInvalidError, match=complaint.replace("(", r"\(")):
        parse_criteria(criteria)


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), "NaN", "sNaN", 10**400, "1e999999999"]
)
def test_what_a_resource_holds_never_makes_matching_raise(value: object) -> None:
    parsed = parse_criteria("Observation?value-quantity=eq1e100,ge1e-100,ne0.5")
    resource = {"resourceType": "Observation", "valueQuantity": {"value": value}}
    assert parsed.matches(resource) == (value == 10**400 or value == "1e999999999")


@pytest.mark.parametrize(
    "number", ["12345678901234567890123456789", "1.0000000000000000000000000001", "9" * 40]
)
def test_eq_and_ne_are_exact_for_every_number_criteria_accept(number: str) -> None:
    # The default 28-digit context rounded value +- half: eq missed the value, ne hit it.
    observation = {"resourceType": "Observation", "valueQuantity": {"value": Decimal(number)}}
    assert parse_criteria(f"Observation?value-quantity=eq{number}").matches(observation)
    assert not parse_criteria(f"Observation?value-quantity=ne{number}").matches(observation)
