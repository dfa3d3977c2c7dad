"""What consent rules read from FHIR resources: the data's codes, labels, date and links.

Patients are keyed by the ways a record names them: the literal reference
(``Patient/<id>``, ours: never an absolute URL, which names a patient on another server)
and each identifier (``system|value``). Whose data a resource is, is the compartment's
question (``compartment.py``, ``subjects.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import tzinfo
from typing import Any

from .models import Code, DataItem
from .periods import Span, parse_span

__all__ = ["describe_resource", "patient_keys", "resolve_actor_references"]

_CODE_ELEMENTS = (
    "code",
    "category",
    "type",
    "class",
    "vaccineCode",
    "medicationCodeableConcept",
    "serviceType",
)
_DATE_ELEMENTS = (
    "effectiveDateTime",
    "effectivePeriod",
    "effectiveInstant",
    "onsetDateTime",
    "onsetPeriod",
    "occurrenceDateTime",
    "occurrencePeriod",
    "performedDateTime",
    "performedPeriod",
    "period",
    "authoredOn",
    "recordedDate",
    "issued",
    "date",
    "recorded",
)
_PATIENT = re.compile(r"^Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?\Z")
_AUTHOR_ELEMENTS = ("author", "performer", "recorder", "asserter", "requester")


def _codes(value: Any) -> Iterator[Code]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            continue
        if "code" in item and isinstance(item["code"], str):  # a Coding (class in Encounter)
            yield Code(item.get("system"), item["code"])
        for coding in item.get("coding") or ():
            if isinstance(coding, dict) and coding.get("code"):
                yield Code(coding.get("system"), str(coding["code"]))


def _references(value: Any) -> Iterator[str]:
    """Every literal reference anywhere in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and "/" in item:
                yield "/".join(item.split("/_history/")[0].split("/")[-2:])
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _span(resource: Mapping[str, Any], zone: tzinfo) -> Span | None:
    for name in _DATE_ELEMENTS:
        value = resource.get(name)
        try:
            if isinstance(value, str):
                return parse_span(value, zone)
            if isinstance(value, dict) and (value.get("start") or value.get("end")):
                start = parse_span(value.get("start") or value["end"], zone)[0]
                end = parse_span(value.get("end") or value["start"], zone)[1]
                return start, end
        except ValueError:
            return None
    return None


def describe_resource(resource: Mapping[str, Any], zone: tzinfo) -> DataItem:
    """The facts about one resource that consent provisions match on."""
    kind = resource.get("resourceType")
    ident = resource.get("id")
    references = frozenset(_references({k: v for k, v in resource.items() if k != "meta"}))
    authors = frozenset(ref for name in _AUTHOR_ELEMENTS for ref in _references(resource.get(name)))
    return DataItem(
        resource_type=kind,
        reference=f"{kind}/{ident}" if kind and ident else None,
        codes=frozenset(c for name in _CODE_ELEMENTS for c in _codes(resource.get(name))),
        security_labels=frozenset(_codes((resource.get("meta") or {}).get("security") or [])),
        span=_span(resource, zone),
        references=references,
        authors=authors,
    )


def patient_keys(reference: Mapping[str, Any] | None) -> set[str]:
    """Keys of the patient a Reference names: ``Patient/<id>`` (a relative reference only)
    and ``system|value``."""
    keys: set[str] = set()
    if not reference:
        return keys
    literal = reference.get("reference")
    if isinstance(literal, str) and (found := _PATIENT.match(literal)):
        keys.add(f"Patient/{found[1]}")
    identifier = reference.get("identifier") or {}
    if identifier.get("value"):
        keys.add(f"{identifier.get('system', '')}|{identifier['value']}")
    return keys


def _best_identifier(resource: Mapping[str, Any]) -> dict[str, str] | None:
    """An identifier to stand for a resource: one of a shared system first."""
    found = [i for i in resource.get("identifier") or () if i.get("value") and i.get("system")]
    shared = [i for i in found if not str(i["system"]).startswith("urn:fhir-intake:partner:")]
    best = (shared or found or [None])[0]
    return {"system": best["system"], "value": best["value"]} if best else None


def resolve_actor_references(
    consent: Mapping[str, Any], resources: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The Consent with each ``provision.actor`` literal reference that names a resource
    we hold (``Type/id`` -> resource) given that resource's identifier as well.

    A requester is often known only by identifier (a partner's NPI or OID); a Reference
    may carry both forms, so the engine can then compare identifiers instead of failing
    closed on a reference it cannot resolve.
    """

    def walk(provision: Any) -> Any:
        if not isinstance(provision, dict):
            return provision
        result = dict(provision)
        actors = []
        for actor in provision.get("actor") or ():
            reference = dict((actor or {}).get("reference") or {})
            literal = reference.get("reference")
            if (
                isinstance(literal, str)
                and not literal.startswith("#")
                and not reference.get("identifier")
            ):
                held = resources.get("/".join(literal.split("/_history/")[0].split("/")[-2:]))
                identifier = _best_identifier(held) if held else None
                if identifier:
                    reference["identifier"] = identifier
            actors.append({**actor, "reference": reference} if reference else actor)
        if actors:
            result["actor"] = actors
        if provision.get("provision"):
            result["provision"] = [walk(child) for child in provision["provision"]]
        return result

    if not isinstance(consent.get("provision"), dict):
        return dict(consent)
    return {**consent, "provision": walk(consent["provision"])}
