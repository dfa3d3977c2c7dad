"""``$evaluate`` in and out as FHIR ``Parameters``.

In: ``patient`` (valueIdentifier or valueReference, repeatable), ``action`` (valueCode),
``purpose`` (valueCoding or valueCode), ``actor`` (valueReference or valueIdentifier,
repeatable), ``actorRole`` (valueCoding or valueCode), ``resource`` (the data asked
about). Out: ``decision``, ``defaultApplied``, ``consent`` (each deciding Consent),
``obligation`` (parts: ``id`` and each ``code``) and ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConsentInputError
from .inputs import parse_action, parse_purpose, validate_resource
from .models import Action, Actor, Code, ConsentDecision
from .resources import patient_keys

__all__ = ["EvaluateRequest", "decision_parameters", "read_evaluate_parameters"]


@dataclass(frozen=True, slots=True)
class EvaluateRequest:
    """What a ``$evaluate`` caller asked."""

    patient_keys: frozenset[str]
    action: Action
    purpose: Code
    actor: Actor | None
    resource: dict[str, Any] | None


def _coding(param: dict[str, Any]) -> str | None:
    if "valueCode" in param:
        return str(param["valueCode"])
    coding = param.get("valueCoding")
    if isinstance(coding, dict) and coding.get("code"):
        return f"{coding['system']}|{coding['code']}" if coding.get("system") else coding["code"]
    return None


def read_evaluate_parameters(body: Any, default_purpose: str) -> EvaluateRequest:
    """Read a ``Parameters`` resource.

    Raises:
        ConsentInputError: not a Parameters, or a required parameter is missing or invalid.
    """
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise ConsentInputError("the body must be a FHIR Parameters resource")
    validate_resource(body, "Parameters")  # every value has its FHIR type from here on
    params = [p for p in body.get("parameter") or () if isinstance(p, dict)]
    keys: set[str] = set()
    references: set[str] = set()
    identifiers: set[str] = set()
    action = purpose = role = None
    resource = None
    for number, param in enumerate(params):
        name, where = param.get("name"), f"Parameters.parameter[{number}]"
        if name == "patient":
            if "valueIdentifier" in param:
                keys |= patient_keys({"identifier": param["valueIdentifier"]})
            else:
                keys |= patient_keys(param.get("valueReference"))
        elif name == "action":
            action = _coding(param)
        elif name == "purpose":
            purpose = _coding(param)
        elif name == "actorRole":
            role = _coding(param)
        elif name == "actor":
            ident = param.get("valueIdentifier") or (param.get("valueReference") or {}).get(
                "identifier"
            )
            literal = (param.get("valueReference") or {}).get("reference")
            if ident and ident.get("value"):
                identifiers.add(f"{ident.get('system', '')}|{ident['value']}")
            elif literal:
                references.add("/".join(str(literal).split("/")[-2:]))
            else:
                raise ConsentInputError("actor needs a reference or an identifier", where)
        elif name == "resource":
            resource = param.get("resource")
            if not isinstance(resource, dict) or "resourceType" not in resource:
                raise ConsentInputError("resource must hold a FHIR resource", where)
    if not keys:
        raise ConsentInputError(
            "patient is required (valueIdentifier, or valueReference to a Patient)", "patient"
        )
    if action is None:
        raise ConsentInputError("action is required (collect, access, use, disclose)", "action")
    actor = (
        Actor(frozenset(references), frozenset(identifiers), Code.parse(role) if role else None)
        if references or identifiers
        else None
    )
    return EvaluateRequest(
        patient_keys=frozenset(keys),
        action=parse_action(action),
        purpose=parse_purpose(purpose or default_purpose),
        actor=actor,
        resource=resource,
    )


def decision_parameters(decision: ConsentDecision) -> dict[str, Any]:
    """The decision as a ``Parameters`` resource."""
    params: list[dict[str, Any]] = [
        {"name": "decision", "valueCode": decision.decision.value},
        {"name": "defaultApplied", "valueBoolean": decision.default_applied},
    ]
    params += [{"name": "consent", "valueReference": {"reference": c}} for c in decision.consents]
    for obligation in decision.obligations:
        as_json = obligation.to_json()
        params.append(
            {
                "name": "obligation",
                "part": [
                    {"name": "id", "valueCoding": as_json["id"]},
                    *({"name": "code", "valueCoding": c} for c in as_json["parameters"]["codes"]),
                    {"name": "basis", "valueString": obligation.consent},
                ],
            }
        )
    params += [{"name": "reason", "valueString": r} for r in decision.reasons]
    return {"resourceType": "Parameters", "parameter": params}
