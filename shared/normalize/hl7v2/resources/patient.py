"""Patient (PID, PD1), RelatedPerson (NK1) and merges (MRG)."""

from __future__ import annotations

from typing import Any

from ...context import BundleBuilder, ConversionContext
from ...ids import SSN_SYSTEM, WELL_KNOWN_SYSTEMS, is_local_system, patient_id, resource_id
from ..datatypes import (
    address,
    codeable_concept,
    contact_point,
    dtm,
    human_name,
    identifier,
    local_date,
)
from ..message import Segment
from ..terminology import GENDER, v2_table_system, v3_coding
from .people import organization, practitioners
from .race_ethnicity import ethnicity_extension, race_extension

__all__ = ["merge_patients", "patient", "patient_id_for", "related_person"]

_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_MAX_BIRTH_ORDER = 2**31 - 1  # FHIR integer; PID-25 is NM, which has no bound
_BIRTH_TIME = "http://hl7.org/fhir/StructureDefinition/patient-birthTime"
_MAIDEN_NAME = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"


def patient_id_for(identifiers: list[dict[str, Any]], ctx: ConversionContext, fallback: str) -> str:
    """The Patient id (always the sending partner's): from its first identifier of a named
    authority (an OID or URI) if there is one, else from its first local one (PID-3.4 a
    bare namespace), else from the message."""
    usable = [i for i in identifiers if i.get("value") and i.get("system") != SSN_SYSTEM]
    ranked = sorted(usable, key=lambda i: is_local_system(i.get("system")))
    if ranked:
        return patient_id(ctx.partner, ranked[0].get("system"), ranked[0]["value"])
    return resource_id(ctx.partner, "Patient", "unidentified", fallback)


def _identifiers(
    pid: Segment, ctx: ConversionContext, *, well_known: bool = True
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n in (3, 2, 4):  # PID-3 identifier list; PID-2/PID-4 (older versions)
        for rep in range(1, pid.repetitions(n) + 1):
            ident = identifier(pid, n, rep, ctx=ctx, well_known=well_known)
            key = repr(sorted(ident.items())) if ident else ""
            if ident and key not in seen:
                seen.add(key)
                found.append(ident)
    ssn = pid.get(19)
    if ssn:
        found.append({"system": SSN_SYSTEM, "value": ssn})
    licence = pid.get(20, 1)
    if licence:
        entry: dict[str, Any] = {
            "type": {"coding": [{"system": _V2_0203, "code": "DL"}]},
            "value": licence,
        }
        issuer = pid.get(20, 2)
        if issuer:
            entry["system"] = f"urn:fhir-intake:driver-licence:{issuer}"
        found.append(entry)
    return found


# Table 0002 codes whose meaning v3 MaritalStatus (the binding's code system) has, often
# under another letter: v2 A is Separated, v3 A Annulled; v2 P Domestic partner, v3 P
# Polygamous. v2 A (Separated), G, R, U, O and T have no v3 equivalent.
_V2_TO_V3_MARITAL = {
    "B": "U",
    "C": "C",
    "D": "D",
    "E": "L",
    "I": "I",
    "M": "M",
    "N": "A",
    "P": "T",
    "S": "S",
    "W": "W",
}


def _marital_status(pid: Segment, ctx: ConversionContext) -> dict[str, Any] | None:
    """PID-16 (table 0002) as sent, with the v3 MaritalStatus code of the same meaning."""
    concept = codeable_concept(pid, 16, ctx=ctx, table="0002")
    if not concept:
        return None
    v2 = next(
        (c for c in concept.get("coding", []) if c.get("system") == v2_table_system("0002")), None
    )
    v3 = v3_coding("MaritalStatus", _V2_TO_V3_MARITAL.get(v2["code"], "")) if v2 else None
    if v3:
        concept["coding"].append(v3)
    return concept


def patient(
    pid: Segment, pd1: Segment | None, ctx: ConversionContext, out: BundleBuilder, message_key: str
) -> dict[str, str]:
    """A Patient from PID (and PD1); returns its reference."""
    identifiers = _identifiers(pid, ctx)
    # The id comes from the identifiers as they were keyed before USSSA and NPI authorities
    # were named as FHIR's systems: a patient known only by such a number keeps its id.
    named = any(i.get("system") in WELL_KNOWN_SYSTEMS for i in identifiers)
    keyed = _identifiers(pid, ctx, well_known=False) if named else identifiers
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_id_for(keyed, ctx, message_key),
    }
    if identifiers:
        resource["identifier"] = identifiers
    names = [x for x in (human_name(pid, 5, r) for r in range(1, pid.repetitions(5) + 1)) if x]
    for rep in range(1, pid.repetitions(9) + 1):  # PID-9 patient alias
        alias = human_name(pid, 9, rep)
        if alias:
            alias.setdefault("use", "nickname")
            names.append(alias)
    if names:
        resource["name"] = names
    maiden = pid.get(6, 1, 1)
    extensions = [
        x
        for x in (
            {"url": _MAIDEN_NAME, "valueString": maiden} if maiden else None,
            race_extension(pid),
            ethnicity_extension(pid),
        )
        if x
    ]
    if extensions:
        resource["extension"] = extensions
    telecom = [
        x
        for x in (
            *(contact_point(pid, 13, r) for r in range(1, pid.repetitions(13) + 1)),
            # PID-14 is the business number: work, unless XTN.2 says otherwise
            *(contact_point(pid, 14, r, "work") for r in range(1, pid.repetitions(14) + 1)),
        )
        if x
    ]
    if telecom:
        resource["telecom"] = telecom
    gender = GENDER.get((pid.get(8) or "").upper())
    if gender:
        resource["gender"] = gender
    elif pid.get(8):
        out.warn(pid.location(8), "administrative sex is not in table 0001; left out")
    birth = dtm(pid.get(7, 1), ctx.local_zone)
    if birth:
        resource["birthDate"] = local_date(pid.get(7, 1)) or birth[:10]
        if len(birth) > 10:  # the time of birth, as R4's extension on birthDate keeps it
            resource["_birthDate"] = {"extension": [{"url": _BIRTH_TIME, "valueDateTime": birth}]}
    elif pid.get(7):
        out.warn(pid.location(7), "date of birth is not a valid DTM; left out")
    died = dtm(pid.get(29, 1), ctx.local_zone)  # PID-29, whatever PID-30 says
    if died and (pid.get(30) or "").upper() != "N":
        resource["deceasedDateTime"] = died  # a date alone is a dateTime too
    elif (pid.get(30) or "").upper() in {"Y", "N"}:
        resource["deceasedBoolean"] = (pid.get(30) or "").upper() == "Y"
        if died:
            out.warn(pid.location(29), "a date of death with PID-30 N; left out")
    addresses = [x for x in (address(pid, 11, r) for r in range(1, pid.repetitions(11) + 1)) if x]
    if addresses:
        resource["address"] = addresses
    marital = _marital_status(pid, ctx)
    if marital:
        resource["maritalStatus"] = marital
    if (pid.get(24) or "").upper() in {"Y", "N"}:
        order = pid.get(25)
        if order and order.isascii() and order.isdigit() and 0 < int(order) <= _MAX_BIRTH_ORDER:
            resource["multipleBirthInteger"] = int(order)
        else:
            resource["multipleBirthBoolean"] = pid.get(24, 1).upper() == "Y"  # type: ignore[union-attr]
    language = codeable_concept(pid, 15, ctx=ctx)
    if language:
        resource["communication"] = [{"language": language}]
    if pd1 is not None:
        gps = practitioners(pd1, 4, ctx, out)
        gps += [
            x
            for x in (organization(pd1, 3, r, ctx, out) for r in range(1, pd1.repetitions(3) + 1))
            if x
        ]
        if gps:
            resource["generalPractitioner"] = gps
    return out.add(resource)


def related_person(
    nk1: Segment, patient_ref: dict[str, str], ctx: ConversionContext, out: BundleBuilder
) -> dict[str, str] | None:
    """NK1: .2 names, .3 relationship (table 0063), .4 addresses, .5 phones, .6 business
    phones (work), every repetition; .13 the organization when the contact is one. Kept
    when it holds any of them; keyed by patient and set id."""
    names = [x for x in (human_name(nk1, 2, r) for r in range(1, nk1.repetitions(2) + 1)) if x]
    relation = codeable_concept(nk1, 3, ctx=ctx, table="0063")
    places = [x for x in (address(nk1, 4, r) for r in range(1, nk1.repetitions(4) + 1)) if x]
    phones = [
        x
        for x in (
            *(contact_point(nk1, 5, r) for r in range(1, nk1.repetitions(5) + 1)),
            *(contact_point(nk1, 6, r, "work") for r in range(1, nk1.repetitions(6) + 1)),
        )
        if x
    ]
    organization_name = nk1.get(13, 1)
    if not (names or relation or places or phones or organization_name):
        return None
    resource: dict[str, Any] = {
        "resourceType": "RelatedPerson",
        "id": resource_id(
            ctx.partner,
            "RelatedPerson",
            patient_ref["reference"],
            nk1.get(1) or "",
            # str(None) when there is no name: the key NK1 had before names repeated
            str(names[0]) if names else organization_name or "None",
        ),
        "patient": patient_ref,
    }
    if names:
        resource["name"] = names
    elif organization_name:
        resource["name"] = [{"text": organization_name}]
    if relation:
        resource["relationship"] = [relation]
    if places:
        resource["address"] = places
    if phones:
        resource["telecom"] = phones
    return out.add(resource)


def merge_patients(
    mrg: Segment, survivor: dict[str, str], ctx: ConversionContext, out: BundleBuilder
) -> None:
    """MRG (A40 and other merges): link the surviving patient and the one merged into it."""
    reps = range(1, mrg.repetitions(1) + 1)
    old_ids = [x for x in (identifier(mrg, 1, r, ctx=ctx, well_known=False) for r in reps) if x]
    if not old_ids:
        out.warn(mrg.location(1), "MRG-1 names no prior patient identifier; merge not recorded")
        return
    old_id = patient_id_for(old_ids, ctx, "merged")
    if f"Patient/{old_id}" == survivor["reference"]:
        return
    old = {
        "resourceType": "Patient",
        "id": old_id,
        "identifier": old_ids,
        "active": False,
        "link": [{"other": survivor, "type": "replaced-by"}],
    }
    old_ref = out.add(old)
    kept = out.get(survivor)
    if kept is not None:
        kept.setdefault("link", []).append({"other": old_ref, "type": "replaces"})
