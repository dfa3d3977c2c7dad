"""The CDS Hooks shape consent decision services answer in (``patient-consent-consult``,
as LEAP's consent decision service defines it), so their clients can call us unchanged.

Context fields may be a single object or a list (both forms are in use): ``patientId``
and ``actor`` as ``{system, value}``, ``purposeOfUse`` as a code, ``scope``
(patient-privacy or research), and our addition ``action`` (default ``access``).
A decision the default policy made is answered as ``NO_CONSENT``, as LEAP does, with
our policy's answer in ``extension.defaultDecision``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConsentInputError
from .inputs import parse_action, parse_purpose
from .models import Action, Actor, Code, ConsentDecision

__all__ = ["HOOK", "SERVICE", "HookRequest", "decision_cards", "read_hook_request"]

HOOK = "patient-consent-consult"
SERVICE = {
    "id": HOOK,
    "hook": HOOK,
    "title": "Patient consent consult",
    "description": "Decides whether an actor may collect, access, use or disclose a "
    "patient's data for a purpose of use, from the patient's FHIR R4 Consents.",
    "prefetch": {},
}
_LABELS = {"permit": "CONSENT_PERMIT", "deny": "CONSENT_DENY"}


@dataclass(frozen=True, slots=True)
class HookRequest:
    """What a hook caller asked."""

    patient_keys: frozenset[str]
    action: Action
    purpose: Code
    actor: Actor | None


def _many(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _system_values(value: Any, where: str) -> set[str]:
    found = set()
    for item in _many(value):
        if not isinstance(item, dict) or not item.get("value"):
            raise ConsentInputError("expected {system, value} objects", where)
        found.add(f"{item.get('system', '')}|{item['value']}")
    return found


def read_hook_request(body: Any, default_purpose: str) -> HookRequest:
    """Read a hook call.

    Raises:
        ConsentInputError: not a patient-consent-consult call, or its context is invalid.
    """
    if not isinstance(body, dict) or body.get("hook") != HOOK:
        raise ConsentInputError(f"hook must be {HOOK!r}", "hook")
    context = body.get("context")
    if not isinstance(context, dict):
        raise ConsentInputError("context is required", "context")
    keys = _system_values(context.get("patientId"), "context.patientId")
    if not keys:
        raise ConsentInputError("context.patientId is required", "context.patientId")
    actors = _system_values(context.get("actor"), "context.actor")
    purposes = _many(context.get("purposeOfUse"))
    return HookRequest(
        patient_keys=frozenset(keys),
        action=parse_action(str(context.get("action") or "access")),
        purpose=parse_purpose(str(purposes[0]) if purposes else default_purpose),
        actor=Actor(identifiers=frozenset(actors)) if actors else None,
    )


def decision_cards(decision: ConsentDecision, source_url: str) -> dict[str, Any]:
    """The CDS Hooks response for a decision."""
    label = "NO_CONSENT" if decision.default_applied else _LABELS[decision.decision.value]
    indicator = {"CONSENT_PERMIT": "info", "CONSENT_DENY": "critical"}.get(label, "warning")
    extension: dict[str, Any] = {
        "decision": label,
        "obligations": [
            {k: v for k, v in o.to_json().items() if k != "consent"} for o in decision.obligations
        ],
        "basedOn": list(decision.consents),
    }
    if decision.default_applied:
        extension["defaultDecision"] = _LABELS[decision.decision.value]
    return {
        "cards": [
            {
                "summary": label,
                "detail": "; ".join(decision.reasons[-3:]) or label,
                "indicator": indicator,
                "source": {"label": "fhir-intake consent decisions", "url": source_url},
                "extension": extension,
            }
        ]
    }
