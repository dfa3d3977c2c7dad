"""Patient-privacy Consent resources for tests, built one way: the skeleton every test
needs (status, scope, LOINC category, patient, date) plus the rule under test."""

from __future__ import annotations

from typing import Any

_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def privacy_consent(
    consent_id: str,
    patient: dict[str, Any],
    date: str,
    *,
    policy_rule: str | None = None,
    provision: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Consent for ``patient`` (a Reference: ``{"identifier": ...}`` or ``{"reference": ...}``)
    with an OPTIN/OPTOUT ``policy_rule`` and/or a ``provision``."""
    consent: dict[str, Any] = {
        "resourceType": "Consent",
        "id": consent_id,
        "status": "active",
        "scope": {"coding": [{"system": _SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": patient,
        "dateTime": date,
    }
    if policy_rule:
        consent["policyRule"] = {"coding": [{"system": _ACT_CODE, "code": policy_rule}]}
    if provision:
        consent["provision"] = provision
    return consent


def action_provision(rule: str, action: str, **more: Any) -> dict[str, Any]:
    """A provision of ``rule`` (permit/deny) for one consent action (collect, access, use...)."""
    return {"type": rule, "action": [{"coding": [{"system": _ACTION, "code": action}]}], **more}


def deny_partner_access(
    consent_id: str, patient_identifier: dict[str, str], date: str, partner: str
) -> dict[str, Any]:
    """A patient's Consent denying one partner (as recipient, PRCP) access to their data."""
    recipient = {"identifier": {"system": "urn:fhir-intake:partner", "value": partner}}
    return privacy_consent(
        consent_id,
        {"identifier": patient_identifier},
        date,
        provision=action_provision(
            "deny",
            "access",
            actor=[{"role": {"coding": [{"code": "PRCP"}]}, "reference": recipient}],
        ),
    )
