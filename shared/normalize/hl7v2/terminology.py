"""Code systems and value maps from HL7 v2 tables to FHIR R4.

HL7 table 0396 names coding systems; FHIR wants canonical URIs. A name we do not know
becomes a partner-scoped URN, so a partner's local codes never mix with another's and
can be mapped later without guessing.

Only code systems that exist are emitted: an HL7 table is terminology.hl7.org's
CodeSystem where it publishes one (``tho_tables.json``, from its package; see
``tools/build_tho_tables.py``), with that CodeSystem's codes and displays, else the
table's OID; a code a published table does not define is the partner's local code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from ..ids import local_system

__all__ = [
    "ENCOUNTER_CLASS",
    "GENDER",
    "OBSERVATION_STATUS",
    "UCUM_SPELLINGS",
    "code_system_uri",
    "is_published_table",
    "published_coding",
    "v2_table_system",
    "v3_coding",
]

THO = "http://terminology.hl7.org/CodeSystem/"
_V2 = THO + "v2-"
_TABLE_OID = "urn:oid:2.16.840.1.113883.12."  # every HL7 table, published or not


@cache
def _tables() -> dict[str, Any]:
    tables: dict[str, Any] = json.loads(
        Path(__file__).with_name("tho_tables.json").read_text(encoding="utf-8")
    )
    return tables


def v2_table_system(number: str) -> str:
    """The system of HL7 table ``number`` (``"0203"``): terminology.hl7.org's CodeSystem
    where it publishes the table, else the table's OID (user-defined tables: 0296, 0064)."""
    if number in _tables()["v2"]:
        return _V2 + number
    return f"{_TABLE_OID}{int(number)}"


def is_published_table(system: str) -> bool:
    """Whether ``system`` is a v2 table's CodeSystem on terminology.hl7.org."""
    return system.startswith(_V2)


def published_coding(system: str, code: str) -> dict[str, str] | None:
    """A coding of a published v2 table with the table's display, or None when the table
    does not define ``code`` (or is not published)."""
    table = _tables()["v2"].get(system.removeprefix(_V2)) if is_published_table(system) else None
    if table is None or code not in table:
        return None
    coding = {"system": system, "code": code}
    if table[code]:
        coding["display"] = table[code]
    return coding


def v3_coding(name: str, code: str) -> dict[str, str] | None:
    """A coding of v3 code system ``name`` (MaritalStatus, ObservationInterpretation) with
    its display, or None when the code system does not define ``code``."""
    display = _tables()["v3"][name].get(code)
    if display is None:
        return None
    coding = {"system": f"{THO}v3-{name}", "code": code}
    if display:
        coding["display"] = display
    return coding


_TABLE_0396 = {
    "LN": "http://loinc.org",
    "LOINC": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "SNOMED": "http://snomed.info/sct",
    "SNOMEDCT": "http://snomed.info/sct",
    "UCUM": "http://unitsofmeasure.org",
    "CVX": "http://hl7.org/fhir/sid/cvx",
    "MVX": "http://hl7.org/fhir/sid/mvx",
    "NDC": "http://hl7.org/fhir/sid/ndc",
    "RXNORM": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "RXN": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "I10C": "http://hl7.org/fhir/sid/icd-10-cm",
    "ICD10CM": "http://hl7.org/fhir/sid/icd-10-cm",
    "I10P": "http://www.cms.gov/Medicare/Coding/ICD10",
    "I9": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9CDX": "http://hl7.org/fhir/sid/icd-9-cm",
    "C4": "http://www.ama-assn.org/go/cpt",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "HCPCS": "urn:oid:2.16.840.1.113883.6.285",
    "NUCC": "http://nucc.org/provider-taxonomy",
    "CDCREC": "urn:oid:2.16.840.1.113883.6.238",
    "NPI": "http://hl7.org/fhir/sid/us-npi",
    "ISO3166": "urn:iso:std:iso:3166",
    "ISO+": "http://unitsofmeasure.org",
}
_HL7_TABLE = re.compile(r"^HL7[-_]?(\d{4})\Z", re.IGNORECASE)
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+\Z")


def code_system_uri(
    name: str | None, partner: str, overrides: Mapping[str, str] | None = None
) -> str | None:
    """The FHIR system for a v2 coding-system name (CWE.3), or None when none was sent.

    The partner's map (``Partner.code_systems``) comes first; then table 0396 names map to
    canonical URIs and ``HL7nnnn`` to the table's (see the module); an OID becomes
    ``urn:oid:``;
    a URI is kept; anything else is the partner's local system.
    """
    if not name or not name.strip():
        return None
    name = name.strip()
    if overrides and name in overrides:  # the partner's own map wins
        return overrides[name]
    known = _TABLE_0396.get(name.upper())
    if known:
        return known
    table = _HL7_TABLE.match(name)
    if table:
        return v2_table_system(table[1])
    if _OID.match(name):
        return f"urn:oid:{name}"
    if name.startswith(("http://", "https://", "urn:")):
        return name
    return local_system(partner, name)


# Table 0001 (administrative sex) to Patient.gender (required binding).
GENDER = {
    "F": "female",
    "M": "male",
    "O": "other",
    "A": "other",
    "U": "unknown",
    "N": "unknown",
    "X": "other",
}

# Table 0004 (patient class) to Encounter.class (v3 ActCode).
ENCOUNTER_CLASS = {
    "E": ("EMER", "emergency"),
    "I": ("IMP", "inpatient encounter"),
    "O": ("AMB", "ambulatory"),
    "P": ("PRENC", "pre-admission"),
    "R": ("AMB", "ambulatory"),
    "B": ("IMP", "inpatient encounter"),
    "C": ("AMB", "ambulatory"),
    "N": ("AMB", "ambulatory"),
    "U": ("AMB", "ambulatory"),
}

# Table 0085 (observation result status) to Observation.status (required binding).
OBSERVATION_STATUS = {
    "F": "final",
    "C": "corrected",
    "A": "amended",
    "P": "preliminary",
    "S": "preliminary",
    "R": "preliminary",
    "I": "registered",
    "O": "registered",
    "X": "cancelled",
    "D": "entered-in-error",
    "W": "entered-in-error",
    "U": "final",
    "N": "unknown",
}

# Unit spellings senders use (ISO+, ANSI, free text) for which the UCUM code is certain.
UCUM_SPELLINGS = {
    "bpm": "/min",
    "beats/min": "/min",
    "beats per minute": "/min",
    "/min": "/min",
    "breaths/min": "/min",
    "mmhg": "mm[Hg]",
    "mm hg": "mm[Hg]",
    "mm[hg]": "mm[Hg]",
    "mg/dl": "mg/dL",
    "g/dl": "g/dL",
    "mmol/l": "mmol/L",
    "umol/l": "umol/L",
    "meq/l": "meq/L",
    "u/l": "U/L",
    "iu/l": "[IU]/L",
    "ng/ml": "ng/mL",
    "pg/ml": "pg/mL",
    "kg": "kg",
    "g": "g",
    "lb": "[lb_av]",
    "lbs": "[lb_av]",
    "cm": "cm",
    "in": "[in_i]",
    "%": "%",
    "percent": "%",
    "degc": "Cel",
    "deg c": "Cel",
    "cel": "Cel",
    "degf": "[degF]",
    "deg f": "[degF]",
    "ml": "mL",
    "l": "L",
    "fl": "fL",
    "10*3/ul": "10*3/uL",
    "k/ul": "10*3/uL",
    "10*6/ul": "10*6/uL",
    "m/ul": "10*6/uL",
    "kg/m2": "kg/m2",
}
