"""FHIR R4 rules that ``fhir.resources`` does not check, and the aliases we clean up.

Required bindings: a code outside the value set makes the resource invalid R4, yet the
models accept any string. The table lists the ones partners get wrong in practice.
"""

from __future__ import annotations

import re

__all__ = ["REQUIRED_BINDINGS", "SYSTEM_ALIASES", "canonical_system"]

_REQUEST_STATUS = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
_EVENT_STATUS = frozenset(
    {
        "preparation",
        "in-progress",
        "not-done",
        "on-hold",
        "stopped",
        "completed",
        "entered-in-error",
        "unknown",
    }
)

# (resource type, element) -> allowed codes
REQUIRED_BINDINGS: dict[tuple[str, str], frozenset[str]] = {
    ("Patient", "gender"): frozenset({"male", "female", "other", "unknown"}),
    ("Practitioner", "gender"): frozenset({"male", "female", "other", "unknown"}),
    ("RelatedPerson", "gender"): frozenset({"male", "female", "other", "unknown"}),
    ("Observation", "status"): frozenset(
        {
            "registered",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "cancelled",
            "entered-in-error",
            "unknown",
        }
    ),
    ("DiagnosticReport", "status"): frozenset(
        {
            "registered",
            "partial",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "appended",
            "cancelled",
            "entered-in-error",
            "unknown",
        }
    ),
    ("Encounter", "status"): frozenset(
        {
            "planned",
            "arrived",
            "triaged",
            "in-progress",
            "onleave",
            "finished",
            "cancelled",
            "entered-in-error",
            "unknown",
        }
    ),
    ("Condition", "clinicalStatus"): frozenset(),  # CodeableConcept: checked by system below
    ("Immunization", "status"): frozenset({"completed", "entered-in-error", "not-done"}),
    ("Procedure", "status"): _EVENT_STATUS,
    ("ServiceRequest", "status"): _REQUEST_STATUS,
    ("ServiceRequest", "intent"): frozenset(
        {
            "proposal",
            "plan",
            "directive",
            "order",
            "original-order",
            "reflex-order",
            "filler-order",
            "instance-order",
            "option",
        }
    ),
    ("MedicationRequest", "status"): frozenset(
        {
            "active",
            "on-hold",
            "cancelled",
            "completed",
            "entered-in-error",
            "stopped",
            "draft",
            "unknown",
        }
    ),
    ("AllergyIntolerance", "criticality"): frozenset({"low", "high", "unable-to-assess"}),
    ("Consent", "status"): frozenset(
        {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}
    ),
    ("Coverage", "status"): frozenset({"active", "cancelled", "draft", "entered-in-error"}),
    ("DocumentReference", "status"): frozenset({"current", "superseded", "entered-in-error"}),
    ("Appointment", "status"): frozenset(
        {
            "proposed",
            "pending",
            "booked",
            "arrived",
            "fulfilled",
            "cancelled",
            "noshow",
            "entered-in-error",
            "checked-in",
            "waitlist",
        }
    ),
}
REQUIRED_BINDINGS = {k: v for k, v in REQUIRED_BINDINGS.items() if v}

SYSTEM_ALIASES = {
    "http://loinc.org/": "http://loinc.org",
    "https://loinc.org": "http://loinc.org",
    "loinc": "http://loinc.org",
    "ln": "http://loinc.org",
    "urn:oid:2.16.840.1.113883.6.1": "http://loinc.org",
    "http://snomed.info/sct/": "http://snomed.info/sct",
    "https://snomed.info/sct": "http://snomed.info/sct",
    "snomed": "http://snomed.info/sct",
    "sct": "http://snomed.info/sct",
    "urn:oid:2.16.840.1.113883.6.96": "http://snomed.info/sct",
    "ucum": "http://unitsofmeasure.org",
    "http://unitsofmeasure.org/": "http://unitsofmeasure.org",
    "urn:oid:2.16.840.1.113883.6.8": "http://unitsofmeasure.org",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "urn:oid:2.16.840.1.113883.6.88": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "urn:oid:2.16.840.1.113883.12.292": "http://hl7.org/fhir/sid/cvx",
    "cvx": "http://hl7.org/fhir/sid/cvx",
}
_BARE_OID = re.compile(r"^(?:oid:)?([0-2](\.(0|[1-9]\d*))+)\Z", re.IGNORECASE)


def canonical_system(system: str) -> str:
    """The canonical URI for a code or identifier system: aliases resolved, bare OIDs as
    ``urn:oid:``, surrounding space trimmed."""
    text = system.strip()
    alias = SYSTEM_ALIASES.get(text.lower()) or SYSTEM_ALIASES.get(text)
    if alias:
        return alias
    bare = _BARE_OID.match(text)
    if bare:
        oid_uri = f"urn:oid:{bare[1]}"
        return SYSTEM_ALIASES.get(oid_uri, oid_uri)
    return text
