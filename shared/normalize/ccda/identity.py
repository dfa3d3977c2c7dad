"""Our ids for what the library made, and its references and identifiers set right.

The library names resources with random UUIDs (a new set on every run), so a resent
document would duplicate everything. Ids here are the partner-scoped ones every format
gives (``shared/normalize/ids.py``): a Patient by its first identifier of a named
authority, exactly as the HL7 v2 path keys it, so a CCD's Patient *is* the Patient an ADT
with the same OID and MRN made; other master entities by their identifier (as HL7 v2
does) or else their content; everything else by its first identifier (with an ordinal
when the document reuses one, as several samples do) or else by the document and its
place in it, so a resend of the same document updates rather than duplicates.

Identifiers follow the IG's II mapping, which the library gets wrong for UUID roots:
a root alone is ``urn:ietf:rfc:3986`` with the root as a URI value; a UUID root is
``urn:uuid:``, never ``urn:oid:``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .. import json_codec
from ..context import ConversionContext
from ..hl7v2.resources.patient import patient_id_for
from ..ids import SSN_SYSTEM, resource_id

__all__ = ["assign_ids", "fix_identifiers", "rewrite_references"]

_MASTERS = {"Practitioner", "Organization", "Location", "RelatedPerson", "PractitionerRole"}
_URI_SYSTEM = "urn:ietf:rfc:3986"
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_ROOT = re.compile(rf"^urn:(?:oid|uuid):(?P<uuid>{_UUID})\Z")
_OID_SYSTEM = re.compile(r"^urn:oid:[0-2](\.(0|[1-9]\d*))+\Z", re.ASCII)


def _fix_identifier(ident: dict[str, Any]) -> dict[str, Any]:
    """One Identifier per the IG's II mapping."""
    system, value = ident.get("system"), ident.get("value")
    uuid_root = _UUID_ROOT.match(system) if isinstance(system, str) else None
    if uuid_root:
        system = f"urn:uuid:{uuid_root['uuid'].lower()}"
    root_only = isinstance(system, str) and (value is None or value == system)
    if root_only and (_OID_SYSTEM.match(str(system)) or str(system).startswith("urn:uuid:")):
        # II with a root and no extension: the root is the whole identifier.
        return {**ident, "system": _URI_SYSTEM, "value": system}
    return {**ident, "system": system} if system is not None else ident


def fix_identifiers(resource: dict[str, Any]) -> None:
    """``identifier`` (a list, or one Identifier on Composition) put right in place."""
    found = resource.get("identifier")
    if isinstance(found, list):
        resource["identifier"] = [_fix_identifier(i) for i in found if isinstance(i, dict)]
    elif isinstance(found, dict):
        resource["identifier"] = _fix_identifier(found)


def _identifiers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    found = resource.get("identifier")
    items = found if isinstance(found, list) else [found] if isinstance(found, dict) else []
    return [i for i in items if isinstance(i, dict) and i.get("value")]


def _keyed(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The identifiers a resource may be keyed by (never an SSN)."""
    return [i for i in _identifiers(resource) if i.get("system") != SSN_SYSTEM]


def _without_references(value: Any) -> Any:
    """A resource's content without its own id, meta and any reference (the library's
    are random): what an unidentified master entity is known by."""
    if isinstance(value, dict):
        return {
            k: _without_references(v)
            for k, v in value.items()
            if k not in {"id", "meta", "reference"}
        }
    if isinstance(value, list):
        return [_without_references(v) for v in value]
    return value


def _content_key(resource: dict[str, Any]) -> str:
    content = json_codec.dumps(_without_references(resource), sort_keys=True).encode()
    return hashlib.sha256(content).hexdigest()


def assign_ids(
    resources: list[dict[str, Any]], ctx: ConversionContext, document_key: str
) -> dict[str, str]:
    """Give every resource our id, in place; returns the library's names for each
    (``urn:uuid:X``, ``Type/X``) mapped to our ``Type/id``."""
    renamed: dict[str, str] = {}
    seen: dict[tuple[str, ...], int] = {}
    for resource in resources:
        fix_identifiers(resource)
    # A document is about one patient; its clinical resources are keyed under that
    # patient, so an identifier another patient's document reuses (the samples do) never
    # names this patient's Condition.
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    subject = patient_id_for(_keyed(patients[0]), ctx, f"ccda|{document_key}") if patients else ""
    for resource in resources:
        kind = resource["resourceType"]
        identifiers = _keyed(resource)
        if kind == "Patient":
            our = patient_id_for(identifiers, ctx, f"ccda|{document_key}")
        else:
            if identifiers:
                first = identifiers[0]
                system = first.get("system") or ""
                # Master entities keyed as the HL7 v2 path keys them (an NPI is one
                # Practitioner whichever format named it); the rest in a C-CDA space.
                key: tuple[str, ...] = (
                    (kind, system, first["value"])
                    if kind in _MASTERS
                    else (kind, "ccda", subject, json_codec.dumps([system, first["value"]]))
                )
            elif kind in _MASTERS:
                key = (kind, "content", _content_key(resource))
            else:
                key = (kind, "document", subject, document_key)
            count = seen.get(key, 0)
            seen[key] = count + 1
            reused = key[1] == "document" or bool(count and kind not in _MASTERS)
            parts = [*key[1:], str(count)] if reused else list(key[1:])
            our = resource_id(ctx.partner, kind, *parts)
        old = resource.get("id")
        if old:
            renamed[f"urn:uuid:{old}"] = f"{kind}/{our}"
            renamed[f"{kind}/{old}"] = f"{kind}/{our}"
        resource["id"] = our
    return renamed


def rewrite_references(value: Any, renamed: dict[str, str]) -> int:
    """Point every reference at our ids, in place; a reference to nothing in the
    document keeps only its display. Returns how many were dangling."""
    dangling = 0
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and not ref.startswith(("#", "http://", "https://")):
            if ref in renamed:
                value["reference"] = renamed[ref]
            else:
                del value["reference"]
                value.setdefault("display", "not in the document")
                dangling += 1
        for item in value.values():
            dangling += rewrite_references(item, renamed)
    elif isinstance(value, list):
        for item in value:
            dangling += rewrite_references(item, renamed)
    return dangling
