"""Reading decision inputs from people and partners: Consent files, resources, codes.

Shared by the CLI and the HTTP operations, so both accept and refuse the same things
with the same words. Consents are checked against the R4 structure (``fhir.resources``
R4B models, compatible with R4) before the engine reads them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from .errors import ConsentInputError
from .models import Action, Actor, Code, PolicyMode
from .periods import parse_span
from .vocabulary import ACT_REASON

__all__ = [
    "load_consents",
    "load_resource",
    "parse_action",
    "parse_actor",
    "parse_instant",
    "parse_policy_mode",
    "parse_purpose",
    "validate_resource",
]

_PURPOSE = re.compile(r"^[A-Z][A-Z0-9]{1,31}\Z")
_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}\Z")


def validate_resource(resource: dict[str, Any], where: str) -> None:
    """Check a resource against the R4 structure.

    Raises:
        ConsentInputError: unknown type or invalid R4.
    """
    kind = resource.get("resourceType")
    try:
        model = get_fhir_model_class(str(kind))
    except KeyError as exc:
        raise ConsentInputError(f"unknown resourceType {kind!r}", where) from exc
    try:
        model.model_validate(resource)
    except RecursionError as exc:
        raise ConsentInputError(f"{kind} is nested too deeply", where) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"] if p != "__root__")
        raise ConsentInputError(
            f"{kind} is not valid FHIR R4: {path}: {first['msg']}", where
        ) from exc


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConsentInputError(f"not JSON: {exc}", where) from exc
    except RecursionError as exc:
        raise ConsentInputError("JSON nested too deeply", where) from exc


def load_consents(data: bytes, where: str) -> list[dict[str, Any]]:
    """The Consent resources in a file: one Consent, or a Bundle of them.

    Raises:
        ConsentInputError: not JSON, not a Consent or a Bundle of Consents, or invalid R4.
    """
    value = _json(data, where)
    if not isinstance(value, dict):
        raise ConsentInputError("expected a Consent or a Bundle of Consents", where)
    if value.get("resourceType") == "Bundle":
        found = []
        for number, entry in enumerate(value.get("entry") or ()):
            resource = (entry or {}).get("resource") or {}
            if resource.get("resourceType") == "Consent":
                validate_resource(resource, f"{where}: entry[{number}]")
                found.append(resource)
        if not found:
            raise ConsentInputError("the Bundle holds no Consent", where)
        return found
    if value.get("resourceType") != "Consent":
        raise ConsentInputError(
            f"expected a Consent or a Bundle of Consents, got {value.get('resourceType')!r}",
            where,
        )
    validate_resource(value, where)
    return [value]


def load_resource(data: bytes, where: str) -> dict[str, Any]:
    """One FHIR resource: the data a decision is asked about.

    Raises:
        ConsentInputError: not JSON or not a valid R4 resource.
    """
    value = _json(data, where)
    if not isinstance(value, dict) or "resourceType" not in value:
        raise ConsentInputError("expected a FHIR resource", where)
    validate_resource(value, where)
    return value


def parse_action(text: str) -> Action:
    """A consentaction code (collect, access, use, disclose, correct)."""
    try:
        return Action(text.strip().lower())
    except ValueError as exc:
        allowed = ", ".join(a.value for a in Action)
        raise ConsentInputError(f"action must be one of {allowed}, got {text!r}", "action") from exc


def parse_policy_mode(text: str) -> PolicyMode:
    """opt-in or opt-out."""
    try:
        return PolicyMode(text.strip().lower())
    except ValueError as exc:
        raise ConsentInputError(
            f"policy must be opt-in or opt-out, got {text!r}", "policy"
        ) from exc


def parse_purpose(text: str) -> Code:
    """A v3 ActReason code, optionally as ``system|code``."""
    system, _, code = text.strip().rpartition("|")
    if system and system != ACT_REASON:
        raise ConsentInputError(
            f"purpose of use must be a v3 ActReason code ({ACT_REASON}), got system {system!r}",
            "purpose",
        )
    if not _PURPOSE.match(code):
        raise ConsentInputError(
            f"purpose of use must be a v3 ActReason code such as TREAT or ETREAT, got {code!r}",
            "purpose",
        )
    return Code(ACT_REASON, code)


def parse_actor(entries: Iterable[str], role: str | None = None) -> Actor | None:
    """An actor from ``Type/id`` references and ``system|value`` identifiers."""
    references: set[str] = set()
    identifiers: set[str] = set()
    for entry in entries:
        text = entry.strip()
        if "|" in text and text.rpartition("|")[2]:
            identifiers.add(text)
        elif _REFERENCE.match(text):
            references.add(text)
        else:
            raise ConsentInputError(f"actor must be Type/id or system|value, got {text!r}", "actor")
    if not references and not identifiers:
        return None
    return Actor(frozenset(references), frozenset(identifiers), Code.parse(role) if role else None)


def parse_instant(text: str | None) -> datetime:
    """An ISO date or dateTime (a date means its first instant, UTC when no zone); now if None."""
    if not text:
        return datetime.now(UTC)
    try:
        return parse_span(text, UTC)[0]
    except ValueError as exc:
        raise ConsentInputError(f"not an ISO date or dateTime: {text!r}", "at") from exc
