"""FHIR R4 AuditEvents for consent decisions: who asked, about what, the answer and why.

One AuditEvent per distinct decision within a unit of work (a normalized Bundle, an HTTP
evaluation); resources that got the same answer from the same consents share it. Ids
are derived from the work's id, so a retried message writes the same events again
instead of new ones. Reasons name consents, provisions and codes, never identifiers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .models import Actor, Code, ConsentDecision, Effect, Policy

__all__ = ["AUDIT_NAMESPACE", "consent_audit_event"]

AUDIT_NAMESPACE = uuid.UUID("0b9e3f0e-6c2e-5d7e-9a44-3f1f6c1d2a55")
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_SUBTYPE = "urn:fhir-intake:audit-event-subtype"


def _who(actor: Actor | None) -> dict[str, Any]:
    if actor is None:
        return {"display": "unidentified requester"}
    if actor.references:
        return {"reference": sorted(actor.references)[0]}
    system, _, value = sorted(actor.identifiers)[0].rpartition("|")
    return {"identifier": {"system": system, "value": value}}


def _entity(reference: str, kind: str, role: str) -> dict[str, Any]:
    return {
        "what": {"reference": reference},
        "type": {"system": _ENTITY_TYPE, "code": kind},
        "role": {"system": _OBJECT_ROLE, "code": role},
    }


def consent_audit_event(
    *,
    work_id: str,
    number: int,
    decision: ConsentDecision,
    action: str,
    purpose: Code | None,
    actor: Actor | None,
    policy: Policy,
    recorded: datetime,
    patient: str | None,
    resources: Sequence[str] = (),
    observer: str = "fhir-intake",
    requester: Actor | None = None,
    access: str | None = None,
) -> dict[str, Any]:
    """The AuditEvent for one decision.

    Args:
        work_id: what the decision was part of (ingestion correlation id, request id).
        number: which decision of that work (with ``work_id``, makes the id stable).
        patient: ``Patient/<id>`` the data belongs to, where known.
        resources: ``Type/id`` of each resource the decision covered.
        requester: who asked for the decision, when that is not ``actor`` itself (an
            API caller asking on behalf of a clinic).
        access: how the reader reached the person (``relationship``, ``population``,
            ``break-the-glass``, ``none``: ``security/trust.Access``), for reads.
    """
    details = [
        {"type": "decision", "valueString": decision.decision.value},
        {"type": "policy", "valueString": policy.mode.value},
        {"type": "default-applied", "valueString": str(decision.default_applied).lower()},
        *({"type": "reason", "valueString": r[:1000]} for r in decision.reasons[-20:]),
        *([{"type": "access", "valueString": access}] if access else []),
    ]
    entities = [_entity(patient, "1", "1")] if patient else []
    entities += [_entity(ref, "2", "4") for ref in resources]
    entities += [_entity(ref, "2", "13") for ref in decision.consents]
    entities.append(
        {
            "type": {"system": _SUBTYPE, "code": "consent-decision"},
            "name": "consent decision",
            "detail": details,
        }
    )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid5(AUDIT_NAMESPACE, f"consent|{work_id}|{number}")),
        "type": {"system": _DCM, "code": "110110", "display": "Patient Record"},
        "subtype": [
            {"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": action},
            {"system": _SUBTYPE, "code": "consent-decision"},
            *(
                [{"system": _SUBTYPE, "code": "break-the-glass"}]
                if access == "break-the-glass"
                else []
            ),
        ],
        "action": "E",
        "recorded": recorded.isoformat(),
        # 0 success for a permit; a deny is 4 (minor failure), so a search by outcome finds it.
        "outcome": "0" if decision.decision is Effect.PERMIT else "4",
        "outcomeDesc": f"{decision.decision.value}"
        + (" (default policy)" if decision.default_applied else ""),
        "agent": [
            *([{"who": _who(requester), "requestor": True}] if requester else []),
            {"who": _who(actor), "requestor": requester is None},
        ],
        "source": {
            "observer": {"display": observer},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                }
            ],
        },
        "entity": entities,
    }
    if purpose is not None:
        event["purposeOfEvent"] = [{"coding": [purpose.to_fhir()]}]
    return event
