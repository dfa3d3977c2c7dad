"""Deterministic resource ids: the same input gives the same id, on every resend.

Master entities (Patient, Practitioner, Organization, Location) are keyed by their
identifier. An identifier from a global assigning authority (OID or URI) is keyed as
is, so one patient relayed by two partners gets one id; a local authority name is
qualified by the partner, so two partners' "MRN 1" never collide. Per-message
resources are keyed by partner and their own source identifiers.
"""

from __future__ import annotations

import re
import uuid

__all__ = ["NAMESPACE", "authority_system", "is_global_system", "local_system", "resource_id"]

NAMESPACE = uuid.UUID("8f5c6b1e-3f7a-5a9c-9d38-6a1f2e4b7c10")  # fhir-intake's own namespace
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+\Z")


def local_system(partner: str, name: str) -> str:
    """The URN for a partner's own code or identifier system
    (``urn:fhir-intake:partner:p1:cs:99LAB``)."""
    safe = re.sub(r"[^A-Za-z0-9.\-_]", "_", name.strip())
    return f"urn:fhir-intake:partner:{partner}:cs:{safe}"


def authority_system(
    namespace: str | None, universal_id: str | None, id_type: str | None, partner: str
) -> str | None:
    """Identifier.system from an HD (assigning authority: namespace, universal id, type).

    An ISO OID or a URI (HD.2 with HD.3 ISO/URI, or an OID-shaped HD.1) is global;
    a bare namespace is the partner's local system.
    """
    if universal_id:
        uid = universal_id.strip()
        if (id_type or "").upper() in {"ISO", ""} and _OID.match(uid):
            return f"urn:oid:{uid}"
        if (id_type or "").upper() in {"URI", "URL"} or uid.startswith(
            ("http://", "https://", "urn:")
        ):
            return uid
    if namespace:
        ns = namespace.strip()
        if _OID.match(ns):
            return f"urn:oid:{ns}"
        if ns.startswith(("http://", "https://", "urn:")):
            return ns
        return local_system(partner, ns)
    return None


def is_global_system(system: str | None) -> bool:
    """Whether an identifier system is shared across partners (not partner-scoped)."""
    return bool(system) and not str(system).startswith("urn:fhir-intake:partner:")


def resource_id(resource_type: str, *parts: str | None) -> str:
    """A UUIDv5 over the resource type and the stable parts that identify it."""
    key = "|".join([resource_type, *(p or "" for p in parts)])
    return str(uuid.uuid5(NAMESPACE, key))
