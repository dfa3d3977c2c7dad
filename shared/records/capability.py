"""The CapabilityStatement: exactly what the read API supports today."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .search_params import CODED_TYPES, DATED_TYPES

__all__ = ["capability_statement"]

# What our converters write; FHIR JSON ingestion may store any other R4 type, which the
# same interactions serve (rest.documentation says so).
_TYPES = (
    "AllergyIntolerance",
    "Appointment",
    "Condition",
    "Consent",
    "Coverage",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "Immunization",
    "Location",
    "MedicationRequest",
    "Observation",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "RelatedPerson",
    "ServiceRequest",
    "Specimen",
)


_EVERYTHING = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
_PURGE = "urn:fhir-intake:OperationDefinition:Patient-purge"


def _search_params(kind: str) -> list[dict[str, str]]:
    """What ``search_params.parse_search`` accepts for a type."""
    found = [
        {"name": "patient", "type": "reference"},
        {"name": "_lastUpdated", "type": "date"},
    ]
    if kind == "Patient":
        found.append({"name": "identifier", "type": "token"})
    if kind in CODED_TYPES:
        found.append({"name": "code", "type": "token"})
    if kind in DATED_TYPES:
        found.append({"name": "date", "type": "date"})
    return found


def capability_statement(base_url: str, version: str) -> dict[str, Any]:
    """The server's CapabilityStatement (R4) for ``base_url``."""
    interactions = [
        {"code": "read"},
        {"code": "vread"},
        {"code": "history-instance"},
        {"code": "search-type"},
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "kind": "instance",
        "software": {"name": "fhir-intake", "version": version},
        "implementation": {"description": "fhir-intake unified record", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Read-only. Callers send X-API-Key or an Entra ID bearer token (read, "
                    "population or admin role) and may send X-Purpose-Of-Use (a v3 "
                    "ActReason code the partner is registered for, else 403; default TREAT "
                    "for read and population, HOPERAT for admin). A read-role caller reads "
                    "the persons it has a relationship with (it sent one of their records, "
                    "or an operator registered them to it); ETREAT or BTG reaches beyond "
                    "only for partners granted break-the-glass. Every read of patient data "
                    "then passes the consent of the whole person (action access) and is "
                    "audited; what the read scope or consent withholds answers 404, like "
                    "what does not exist. System-level $export needs the population role; "
                    "Patient/$export by a read-role caller exports its persons. Every "
                    "resource is its sending partner's (meta.source). Any R4 resource type "
                    "stored through FHIR JSON ingestion supports the interactions listed "
                    "for these types."
                ),
                "security": {
                    "cors": False,
                    "description": (
                        "API keys or Entra ID tokens per partner; roles ingest, read, "
                        "population, consent-source, registry, break-glass, admin "
                        "(docs/security.md, Trust model)"
                    ),
                },
                "resource": [
                    {
                        "type": kind,
                        "interaction": interactions,
                        "versioning": "versioned",
                        "readHistory": True,
                        "updateCreate": False,
                        "searchParam": _search_params(kind),
                        **(
                            {
                                "operation": [
                                    {
                                        "name": "everything",
                                        "definition": _EVERYTHING,
                                    },
                                    {
                                        "name": "purge",
                                        "definition": _PURGE,
                                        "documentation": "POST, admin role: erases the patient",
                                    },
                                ]
                            }
                            if kind == "Patient"
                            else {}
                        ),
                    }
                    for kind in _TYPES
                ],
            }
        ],
    }
