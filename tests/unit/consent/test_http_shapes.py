"""$evaluate Parameters, CDS Hooks cards and AuditEvents: their shapes, checked against
the R4 models where FHIR defines them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.consent import (
    Action,
    Actor,
    Code,
    ConsentDecision,
    ConsentInputError,
    Effect,
    Obligation,
    Policy,
)
from shared.consent.audit import consent_audit_event
from shared.consent.cds_hooks import decision_cards, read_hook_request
from shared.consent.parameters import decision_parameters, read_evaluate_parameters

DENY = ConsentDecision(
    Effect.DENY, consents=("Consent/c1",), reasons=("Consent/c1: deny by its root provision",)
)
PERMIT = ConsentDecision(
    Effect.PERMIT,
    obligations=(
        Obligation(
            (Code("http://terminology.hl7.org/CodeSystem/v3-ActCode", "PSY"),), "Consent/c2"
        ),
    ),
    default_applied=True,
    reasons=("no consent applies",),
)


def test_parameters_in() -> None:
    asked = read_evaluate_parameters(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patient", "valueIdentifier": {"system": "urn:oid:1.2", "value": "7"}},
                {"name": "patient", "valueReference": {"reference": "Patient/p1"}},
                {"name": "action", "valueCode": "disclose"},
                {
                    "name": "purpose",
                    "valueCoding": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": "ETREAT",
                    },
                },
                {
                    "name": "actor",
                    "valueReference": {"reference": "https://x.example/fhir/Organization/o1"},
                },
                {"name": "actor", "valueIdentifier": {"system": "urn:npi", "value": "9"}},
                {"name": "actorRole", "valueCode": "PRCP"},
            ],
        },
        "TREAT",
    )
    assert asked.patient_keys == {"urn:oid:1.2|7", "Patient/p1"}
    assert (asked.action, asked.purpose.code) == (Action.DISCLOSE, "ETREAT")
    assert asked.actor == Actor(
        frozenset({"Organization/o1"}), frozenset({"urn:npi|9"}), Code(None, "PRCP")
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"resourceType": "Bundle"}, "must be a FHIR Parameters"),
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "action", "valueCode": "access"}],
            },
            "patient is required",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "patient", "valueReference": {"reference": "Patient/1"}}],
            },
            "action is required",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "patient", "valueReference": {"reference": "Patient/1"}},
                    {"name": "action", "valueCode": "peek"},
                ],
            },
            "action must be one of",
        ),
    ],
)
def test_parameters_refused(body: dict, words: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConsentInputError, match=words):
        read_evaluate_parameters(body, "TREAT")


def test_parameters_out_are_valid_r4() -> None:
    for decision in (DENY, PERMIT):
        out = decision_parameters(decision)
        get_fhir_model_class("Parameters").model_validate(out)
    names = [p["name"] for p in decision_parameters(PERMIT)["parameter"]]
    assert names == ["decision", "defaultApplied", "obligation", "reason"]


def test_hook_request_accepts_single_objects_and_lists() -> None:
    one = read_hook_request(
        {
            "hook": "patient-consent-consult",
            "context": {
                "patientId": {"system": "s", "value": "1"},
                "actor": {"system": "a", "value": "2"},
                "purposeOfUse": "HPAYMT",
            },
        },
        "TREAT",
    )
    many = read_hook_request(
        {
            "hook": "patient-consent-consult",
            "context": {
                "patientId": [{"system": "s", "value": "1"}],
                "actor": [{"system": "a", "value": "2"}],
                "purposeOfUse": ["HPAYMT"],
            },
        },
        "TREAT",
    )
    assert one == many
    assert (
        one.patient_keys == {"s|1"} and one.purpose.code == "HPAYMT" and one.action is Action.ACCESS
    )


def test_cards_follow_the_consent_decision_service_shape() -> None:
    card = decision_cards(DENY, "https://intake.example/api")["cards"][0]
    assert (card["summary"], card["indicator"], card["extension"]["basedOn"]) == (
        "CONSENT_DENY",
        "critical",
        ["Consent/c1"],
    )
    default = decision_cards(PERMIT, "u")["cards"][0]
    assert default["extension"]["decision"] == "NO_CONSENT"
    assert default["extension"]["defaultDecision"] == "CONSENT_PERMIT"
    assert default["extension"]["obligations"][0]["parameters"]["codes"][0]["code"] == "PSY"


def test_audit_event_is_valid_r4_and_stable_across_retries() -> None:
    kwargs = dict(
        work_id="ing-1",
        number=0,
        decision=DENY,
        action="collect",
        purpose=Code("http://terminology.hl7.org/CodeSystem/v3-ActReason", "TREAT"),
        actor=Actor(identifiers=frozenset({"urn:fhir-intake:partner|p1"})),
        policy=Policy(),
        recorded=datetime(2026, 6, 15, tzinfo=UTC),
        patient="Patient/p1",
        resources=["Observation/o1"],
    )
    event = consent_audit_event(**kwargs)  # type: ignore[arg-type]
    get_fhir_model_class("AuditEvent").model_validate(event)
    assert consent_audit_event(**kwargs)["id"] == event["id"]  # type: ignore[arg-type]
    assert consent_audit_event(**{**kwargs, "number": 1})["id"] != event["id"]  # type: ignore[arg-type]
    roles = {x["what"]["reference"]: x["role"]["code"] for x in event["entity"] if "what" in x}
    assert roles == {"Patient/p1": "1", "Observation/o1": "4", "Consent/c1": "13"}
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
names = st.sampled_from(["patient", "action", "purpose", "actor", "actorRole", "resource", "x"])
value_keys = st.sampled_from(
    ["valueIdentifier", "valueReference", "valueCode", "valueCoding", "resource", "valueString"]
)
parameters = st.builds(
    lambda items: {"resourceType": "Parameters", "parameter": items},
    st.lists(
        st.builds(lambda n, k, v: {"name": n, k: v}, names, value_keys, json_values), max_size=5
    ),
)
hooks = st.builds(
    lambda ctx: {"hook": "patient-consent-consult", "context": ctx},
    st.dictionaries(
        st.sampled_from(["patientId", "actor", "purposeOfUse", "action", "scope"]), json_values
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(parameters, json_values))
def test_any_json_is_read_or_refused_with_a_reason(body: Any) -> None:
    try:
        read_evaluate_parameters(body, "TREAT")
    except ConsentInputError as exc:
        assert exc.diagnostics


@settings(max_examples=300, deadline=None)
@given(st.one_of(hooks, json_values))
def test_any_hook_call_is_read_or_refused_with_a_reason(body: Any) -> None:
    try:
        read_hook_request(body, "TREAT")
    except ConsentInputError as exc:
        assert exc.diagnostics
