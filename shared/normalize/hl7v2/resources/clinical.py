"""AllergyIntolerance (AL1), Condition (DG1), Procedure (PR1) and Coverage (IN1)."""

from __future__ import annotations

from typing import Any

from ...context import BundleBuilder, ConversionContext
from ...ids import local_system, resource_id
from ..datatypes import codeable_concept, dtm, ends_before_start, identifier
from ..message import Segment
from ..terminology import code_system_uri
from .people import organization, organization_id, organization_named, practitioner

__all__ = ["allergy", "condition", "coverage", "procedure"]

_ALLERGY_CATEGORY = {
    "DA": "medication",
    "MA": "medication",
    "FA": "food",
    "EA": "environment",
    "AA": "environment",
    "PA": "environment",
    "LA": "environment",
    "PLA": "environment",
    "MC": "medication",
}
_CRITICALITY = {"SV": "high", "MO": "low", "MI": "low", "U": "unable-to-assess"}
_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"


def _concept_key(concept: dict[str, Any] | None) -> str:
    if not concept:
        return ""
    return "|".join(
        f"{c.get('system', '')}#{c.get('code', '')}" for c in concept.get("coding", [])
    ) or concept.get("text", "")


def allergy(
    al1: Segment, patient: dict[str, str], ctx: ConversionContext, out: BundleBuilder
) -> dict[str, str] | None:
    """AL1 (or IAM, same positions): .2 type, .3 allergen, .4 severity, .5 reaction; onset
    AL1-6 or IAM-11."""
    code = codeable_concept(al1, 3, ctx=ctx)
    if code is None:
        out.warn(al1.location(3), "AL1-3 (allergen) is empty; allergy left out")
        return None
    resource: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "id": resource_id(
            ctx.partner, "AllergyIntolerance", patient["reference"], _concept_key(code)
        ),
        "clinicalStatus": {"coding": [{"system": _CLINICAL, "code": "active"}]},
        "code": code,
        "patient": patient,
    }
    category = _ALLERGY_CATEGORY.get((al1.get(2) or "").upper())
    if category:
        resource["category"] = [category]
    criticality = _CRITICALITY.get((al1.get(4) or "").upper())
    if criticality:
        resource["criticality"] = criticality
    reactions = [al1.get(5, rep=r) for r in range(1, al1.repetitions(5) + 1)]
    reactions = [r for r in reactions if r]
    if reactions:
        resource["reaction"] = [{"manifestation": [{"text": r} for r in reactions]}]
    onset = dtm(al1.get(6 if al1.name == "AL1" else 11), ctx.local_zone)  # AL1-6, IAM-11
    if onset:
        resource["onsetDateTime"] = onset
    return out.add(resource)


def condition(
    dg1: Segment,
    patient: dict[str, str],
    encounter: dict[str, str] | None,
    ctx: ConversionContext,
    out: BundleBuilder,
) -> dict[str, str] | None:
    """DG1: .3 diagnosis code, .5 diagnosis date, .6 type, .16 clinician."""
    code = codeable_concept(dg1, 3, ctx=ctx)
    if code is None:
        text = dg1.get(4)
        code = {"text": text} if text else None
    if code is None:
        out.warn(dg1.location(3), "DG1-3 (diagnosis code) is empty; diagnosis left out")
        return None
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": resource_id(
            ctx.partner,
            "Condition",
            patient["reference"],
            (encounter or {}).get("reference", ""),
            _concept_key(code),
        ),
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "encounter-diagnosis",
                        "display": "Encounter Diagnosis",
                    }
                ]
            }
        ],
        "code": code,
        "subject": patient,
    }
    if encounter:
        resource["encounter"] = encounter
    recorded = dtm(dg1.get(5, 1), ctx.local_zone)
    if recorded:
        resource["recordedDate"] = recorded
    clinician = practitioner(dg1, 16, 1, ctx, out)
    if clinician:
        resource["asserter"] = clinician
    return out.add(resource)


def procedure(
    pr1: Segment,
    patient: dict[str, str],
    encounter: dict[str, str] | None,
    ctx: ConversionContext,
    out: BundleBuilder,
) -> dict[str, str] | None:
    """PR1: .3 procedure code, .5 procedure time, .11 surgeon."""
    code = codeable_concept(pr1, 3, ctx=ctx) or ({"text": pr1.get(4)} if pr1.get(4) else None)
    if code is None:
        out.warn(pr1.location(3), "PR1-3 (procedure code) is empty; procedure left out")
        return None
    performed = dtm(pr1.get(5, 1), ctx.local_zone)
    resource: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": resource_id(
            ctx.partner,
            "Procedure",
            patient["reference"],
            _concept_key(code),
            dtm(pr1.get(5, 1), ctx.id_zone) or "",
        ),
        "status": "completed",
        "code": code,
        "subject": patient,
    }
    if encounter:
        resource["encounter"] = encounter
    if performed:
        resource["performedDateTime"] = performed
    surgeon = practitioner(pr1, 11, 1, ctx, out)
    if surgeon:
        resource["performer"] = [{"actor": surgeon}]
    return out.add(resource)


_UNKNOWN_PAYOR: dict[str, Any] = {
    "extension": [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
            "valueCode": "unknown",
        }
    ]
}


def _insurer(in1: Segment, ctx: ConversionContext, out: BundleBuilder) -> dict[str, str] | None:
    """The insurer: IN1-3 (company id, CX) with IN1-4's name, else IN1-4 alone."""
    ident = identifier(in1, 3, ctx=ctx)
    if ident is None:
        return organization(in1, 4, 1, ctx, out)
    return organization_named(in1.get(4, 1), ident["value"], ident.get("system"), ctx, out)


def coverage(
    in1: Segment, patient: dict[str, str], ctx: ConversionContext, out: BundleBuilder
) -> dict[str, str]:
    """IN1: .2 plan, .3/.4 company id and name, .8 group, .12/.13 dates, .36 policy number."""
    # IN1-4 names the insurer, IN1-3 its id; with neither, who pays is unknown (never the
    # patient, which Coverage.payor would then say).
    insurer = _insurer(in1, ctx, out)
    payor: dict[str, Any] = dict(insurer) if insurer else _UNKNOWN_PAYOR
    policy = in1.get(36) or in1.get(2, 1) or in1.get(1) or ""
    resource: dict[str, Any] = {
        "resourceType": "Coverage",
        "id": resource_id(
            ctx.partner,
            "Coverage",
            patient["reference"],
            # keyed as before IN1-3 named the insurer: a resend updates its Coverage
            f"Organization/{legacy}"
            if (legacy := organization_id(in1, 4, 1, ctx))
            else patient["reference"],
            policy,
        ),
        "status": "active",
        "beneficiary": patient,
        "payor": [payor],
    }
    if in1.get(36):
        resource["subscriberId"] = in1.get(36)
    plan = in1.get(2, 1)  # IN1-2 health plan id is an identifier; IN1-15 the plan type
    if plan:
        named = in1.get(2, 3)
        system = code_system_uri(named, ctx.partner, ctx.code_systems) if named else None
        resource["identifier"] = [
            {"system": system or local_system(ctx.partner, "health-plan"), "value": plan}
        ]
    kind = codeable_concept(in1, 15, ctx=ctx)
    if kind:
        resource["type"] = kind
    start, end = dtm(in1.get(12), ctx.local_zone), dtm(in1.get(13), ctx.local_zone)
    if ends_before_start(start, end):
        out.warn(
            in1.location(13), "the plan expiration date is before its effective date; left out"
        )
        end = None
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    if period:
        resource["period"] = period
    return out.add(resource)
