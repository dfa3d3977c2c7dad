"""Builders for Consent resources and requests, so each test states only what it varies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.consent import Action, Actor, Code, ConsentRequest, DataItem
from shared.consent.vocabulary import ACT_CODE, ACT_REASON, CONFIDENTIALITY, CONSENT_SCOPE

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
LAB = Actor(references=frozenset({"Organization/lab"}))
CLINIC = Actor(references=frozenset({"Organization/clinic"}))


def consent(
    ident: str = "c1",
    *,
    rule: str | None = "OPTIN",
    provision: dict[str, Any] | None = None,
    status: str = "active",
    date: str | None = "2026-01-01",
    scope: str | None = "patient-privacy",
    category: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Consent for Patient/p1 with the given rule, provision and dates."""
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": ident,
        "status": status,
        "patient": {"reference": "Patient/p1"},
        "category": category or [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
    }
    if scope:
        resource["scope"] = {"coding": [{"system": CONSENT_SCOPE, "code": scope}]}
    if rule:
        resource["policyRule"] = {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": rule}]
        }
    if date:
        resource["dateTime"] = date
    if provision is not None:
        resource["provision"] = provision
    return resource


def actor(reference: str) -> dict[str, Any]:
    """A provision.actor entry for a literal reference."""
    return {
        "role": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "PRCP",
                }
            ]
        },
        "reference": {"reference": reference},
    }


def purpose(code: str) -> dict[str, str]:
    """A provision.purpose Coding."""
    return {"system": ACT_REASON, "code": code}


def label(code: str) -> dict[str, str]:
    """A provision.securityLabel Coding (confidentiality codes get their own system)."""
    system = CONFIDENTIALITY if code in {"U", "L", "M", "N", "R", "V"} else ACT_CODE
    return {"system": system, "code": code}


def action(code: str) -> dict[str, Any]:
    """A provision.action CodeableConcept."""
    return {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": code}]
    }


def request(
    *,
    act: Action = Action.ACCESS,
    why: str | None = "TREAT",
    who: Actor | None = CLINIC,
    data: DataItem | None = None,
    at: datetime = NOW,
) -> ConsentRequest:
    """A request at NOW, for treatment, by the clinic, about the record in general."""
    return ConsentRequest(
        action=act,
        at=at,
        purpose=Code(ACT_REASON, why) if why else None,
        actor=who,
        data=data,
    )


def lab_result(*labels: str, code: str = "2093-3") -> DataItem:
    """An Observation with a LOINC code and the given security labels."""
    return DataItem(
        resource_type="Observation",
        reference="Observation/o1",
        codes=frozenset({Code("http://loinc.org", code)}),
        security_labels=frozenset(
            Code(CONFIDENTIALITY if c in {"U", "L", "M", "N", "R", "V"} else ACT_CODE, c)
            for c in labels
        ),
    )
