"""Practitioner (XCN), Organization (XON, HD) and Location (PL): master entities keyed by
identifier within the sending partner's data, so the same one in many of its messages is
one resource (another partner's copy is that partner's own)."""

from __future__ import annotations

from typing import Any

from ...context import BundleBuilder, ConversionContext
from ...ids import authority_system, local_system, resource_id
from ..datatypes import human_name
from ..message import Segment

__all__ = ["location", "organization", "organization_named", "practitioner", "practitioners"]

_PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"


def practitioner(
    seg: Segment, n: int, rep: int, ctx: ConversionContext, out: BundleBuilder
) -> dict[str, str] | None:
    """XCN: .1 id, .2-.7 name, .9 assigning authority, .10 name type, .13 identifier type.

    An id without an assigning authority is only the sender's number for someone: two
    such practitioners are one only when their names agree too."""
    ident = seg.get(n, 1, rep=rep)
    name = human_name(seg, n, rep, first=2, use_at=10)
    if not ident and not name:
        return None
    resource: dict[str, Any] = {"resourceType": "Practitioner"}
    if ident:
        system = authority_system(
            seg.get(n, 9, 1, rep=rep),
            seg.get(n, 9, 2, rep=rep),
            seg.get(n, 9, 3, rep=rep),
            ctx.partner,
        )
        entry: dict[str, Any] = {"value": ident}
        if system:
            entry["system"] = system
        resource["identifier"] = [entry]
        named = "|".join(str(v) for v in (name or {}).values())
        resource["id"] = (
            resource_id(ctx.partner, "Practitioner", system, ident)
            if seg.get(n, 9, 1, rep=rep) or seg.get(n, 9, 2, rep=rep)
            else resource_id(ctx.partner, "Practitioner", system, ident, named)
        )
    else:
        key = "|".join(str(v) for v in (name or {}).values())
        resource["id"] = resource_id(ctx.partner, "Practitioner", "name", key)
    if name:
        resource["name"] = [name]
    return out.add(resource)


def practitioners(
    seg: Segment, n: int, ctx: ConversionContext, out: BundleBuilder
) -> list[dict[str, str]]:
    """Every practitioner in a repeating XCN field, as references."""
    found = (practitioner(seg, n, rep, ctx, out) for rep in range(1, seg.repetitions(n) + 1))
    return [ref for ref in found if ref]


def organization_named(
    name: str | None,
    ident: str | None,
    system: str | None,
    ctx: ConversionContext,
    out: BundleBuilder,
) -> dict[str, str] | None:
    """An Organization from a name and/or identifier."""
    resource = _organization(name, ident, system, ctx)
    return out.add(resource) if resource else None


def _organization(
    name: str | None, ident: str | None, system: str | None, ctx: ConversionContext
) -> dict[str, Any] | None:
    if not name and not ident:
        return None
    resource: dict[str, Any] = {"resourceType": "Organization"}
    if ident:
        entry: dict[str, Any] = {"value": ident}
        if system:
            entry["system"] = system
        resource["identifier"] = [entry]
        resource["id"] = resource_id(ctx.partner, "Organization", system, ident)
    else:
        resource["id"] = resource_id(ctx.partner, "Organization", "name", name)
    if name:
        resource["name"] = name
    return resource


def _xon(seg: Segment, n: int, rep: int, ctx: ConversionContext) -> dict[str, Any] | None:
    """XON: .1 name, .6 assigning authority, .10 id (or .3, before v2.5)."""
    name = seg.get(n, 1, rep=rep)
    ident = seg.get(n, 10, rep=rep) or seg.get(n, 3, rep=rep)
    system = (
        authority_system(
            seg.get(n, 6, 1, rep=rep),
            seg.get(n, 6, 2, rep=rep),
            seg.get(n, 6, 3, rep=rep),
            ctx.partner,
        )
        if ident
        else None
    )
    return _organization(name, ident, system, ctx)


def organization_id(seg: Segment, n: int, rep: int, ctx: ConversionContext) -> str | None:
    """The id ``organization`` gives an XON field, without adding the Organization."""
    resource = _xon(seg, n, rep, ctx)
    return resource["id"] if resource else None


# HD.3 (table 0301) types whose identifiers have a system of their own.
_HD_SYSTEMS = {
    "CLIA": "urn:oid:2.16.840.1.113883.4.7",
    "NPI": "http://hl7.org/fhir/sid/us-npi",
}


def _hd_identifier(
    uid: str | None, kind: str | None, ctx: ConversionContext
) -> tuple[str | None, str | None]:
    """HD.2 universal id as (system, value) by its HD.3 type: an OID (ISO) or a URI is
    itself a URI (``urn:ietf:rfc:3986``); a CLIA or NPI number is a value of that
    registry; any other type (local, DNS, ...) is a value of the partner's system for it."""
    if not uid:
        return None, None
    kind = (kind or "").strip().upper()
    if kind in {"ISO", ""} and uid[0].isdigit() and "." in uid:
        return "urn:ietf:rfc:3986", f"urn:oid:{uid}"
    if kind == "URI" or (not kind and uid.startswith(("http://", "https://", "urn:"))):
        return "urn:ietf:rfc:3986", uid
    if kind in _HD_SYSTEMS:
        return _HD_SYSTEMS[kind], uid
    return local_system(ctx.partner, f"HD-{kind or 'unknown'}"), uid


def organization(
    seg: Segment, n: int, rep: int, ctx: ConversionContext, out: BundleBuilder, *, hd: bool = False
) -> dict[str, str] | None:
    """XON (.1 name, .6 authority, .10 id) or HD (.1 namespace, .2 universal id, .3 type)."""
    if hd:
        namespace, uid, kind = (
            seg.get(n, 1, rep=rep),
            seg.get(n, 2, rep=rep),
            seg.get(n, 3, rep=rep),
        )
        system, ident = _hd_identifier(uid, kind, ctx)
        return organization_named(namespace, ident, system, ctx, out)
    resource = _xon(seg, n, rep, ctx)
    return out.add(resource) if resource else None


def location(
    seg: Segment, n: int, ctx: ConversionContext, out: BundleBuilder
) -> dict[str, str] | None:
    """PL: .1 point of care, .2 room, .3 bed, .4 facility (HD), .9 description."""
    parts = [seg.get(n, i) for i in (1, 2, 3)]
    facility = seg.get(n, 4, 1) or seg.get(n, 4, 2)
    if not any(parts) and not facility:
        return None
    label = "-".join(p for p in parts if p) or facility or ""
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "id": resource_id(ctx.partner, "Location", facility, *parts),
        "name": label,
        "mode": "instance",
    }
    description = seg.get(n, 9)
    if description:
        resource["description"] = description
    kind = ("bd", "Bed") if parts[2] else ("ro", "Room") if parts[1] else None
    if kind:
        resource["physicalType"] = {
            "coding": [{"system": _PHYSICAL_TYPE, "code": kind[0], "display": kind[1]}]
        }
    if facility:
        org = organization_named(facility, None, None, ctx, out)
        if org:
            resource["managingOrganization"] = org
    return out.add(resource)
