"""Deterministic resource ids, scoped by the sending partner: the same input from the same
partner gives the same id on every resend, and two partners never share an id.

Every resource a partner sends is that partner's resource, whatever identifiers it
carries: partner B's ADT for the MRN partner A also uses makes B's Patient, never a new
version of A's. The same person across partners is a *link* between their Patients
(``shared/records/people.py``), not one shared resource. Within a partner, master
entities (Patient, Practitioner, Organization, Location) are keyed by their identifier
and per-message resources by their own source identifiers, so a resend updates instead
of duplicating.
"""

from __future__ import annotations

import hashlib
import re
import uuid

__all__ = [
    "NAMESPACE",
    "SSN_SYSTEM",
    "WELL_KNOWN_SYSTEMS",
    "authority_system",
    "is_local_system",
    "local_system",
    "local_system_prefix",
    "patient_id",
    "resource_id",
]

NAMESPACE = uuid.UUID("8f5c6b1e-3f7a-5a9c-9d38-6a1f2e4b7c10")  # fhir-intake's own namespace
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"  # never an id: shared, reused, often wrong
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+\Z")


def local_system_prefix(partner: str) -> str:
    """What every system of a partner's own names starts with."""
    return f"urn:fhir-intake:partner:{partner}:"


def local_system(partner: str, name: str) -> str:
    """The URN for a partner's own code or identifier system
    (``urn:fhir-intake:partner:p1:cs:99LAB``)."""
    safe = re.sub(r"[^A-Za-z0-9.\-_]", "_", name.strip())
    return f"{local_system_prefix(partner)}cs:{safe}"


def is_local_system(system: str | None, partner: str | None = None) -> bool:
    """Whether a system is a partner's own name space (``partner`` given: that partner's)."""
    if not system:
        return False
    if partner is None:
        return str(system).startswith("urn:fhir-intake:partner:")
    return str(system).startswith(local_system_prefix(partner))


# Assigning authorities by their HL7 table 0363 codes whose identifier systems FHIR
# names: a social security number from USSSA is the SSN whoever sent it.
_WELL_KNOWN = {
    "USSSA": "http://hl7.org/fhir/sid/us-ssn",
    "SSA": "http://hl7.org/fhir/sid/us-ssn",
    "NPI": "http://hl7.org/fhir/sid/us-npi",
}
WELL_KNOWN_SYSTEMS = frozenset(_WELL_KNOWN.values())


def authority_system(
    namespace: str | None,
    universal_id: str | None,
    id_type: str | None,
    partner: str,
    *,
    well_known: bool = True,
) -> str | None:
    """Identifier.system from an HD (assigning authority: namespace, universal id, type).

    An ISO OID or a URI (HD.2 with HD.3 ISO/URI, or an OID-shaped HD.1) names the authority
    itself; a bare namespace is the partner's local system.
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
        known = _WELL_KNOWN.get(ns.upper()) if well_known else None
        if known:
            return known
        if _OID.match(ns):
            return f"urn:oid:{ns}"
        if ns.startswith(("http://", "https://", "urn:")):
            return ns
        return local_system(partner, ns)
    return None


def resource_id(partner: str, resource_type: str, *parts: str | None) -> str:
    """A UUIDv5 over the sending partner, the resource type and the stable parts that
    identify the resource within that partner's data.

    Raises:
        ValueError: no partner: an id that is not scoped by its sender is never made.
    """
    if not partner:
        raise ValueError("a resource id is always scoped by the sending partner")
    key = "|".join([partner, resource_type, *(p or "" for p in parts)])
    return _uuid5(key)


_NAMESPACE_BYTES = NAMESPACE.bytes


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))`` without building a UUID object (RFC 9562
    5.5: SHA-1 of namespace and name, version and variant bits set): ids are made for
    every resource of every message, and the object was a tenth of conversion."""
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def patient_id(partner: str, system: str | None, value: str) -> str:
    """The id of the partner's Patient known by one identifier (what the HL7 v2 and CSV
    converters give a Patient, and what a reference by that identifier resolves to when
    the partner holds no Patient that carries it)."""
    return resource_id(partner, "Patient", system, value)
