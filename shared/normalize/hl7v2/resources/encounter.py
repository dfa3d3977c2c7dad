"""Encounter from PV1 (and PV2), with its status from the ADT trigger event."""

from __future__ import annotations

from typing import Any

from ...context import BundleBuilder, ConversionContext
from ...ids import resource_id
from ..datatypes import codeable_concept, dtm, ends_before_start, identifier
from ..message import Segment
from ..terminology import ENCOUNTER_CLASS
from .people import location, practitioner

__all__ = ["encounter"]

_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_UNKNOWN_CLASS = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
    "code": "UNK",
    "display": "unknown",
}
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
# ADT events to Encounter.status.
_EVENT_STATUS = {
    "A01": "in-progress",
    "A02": "in-progress",
    "A03": "finished",
    "A04": "arrived",
    "A05": "planned",
    "A06": "in-progress",
    "A07": "in-progress",
    "A08": "in-progress",
    "A11": "cancelled",
    "A12": "in-progress",
    "A13": "in-progress",
    "A14": "planned",
    "A27": "cancelled",
    "A38": "cancelled",
}
_PARTICIPANTS = (
    (7, "ATND", "attender"),
    (8, "REF", "referrer"),
    (9, "CON", "consultant"),
    (17, "ADM", "admitter"),
)


def encounter(
    pv1: Segment,
    pv2: Segment | None,
    patient: dict[str, str],
    event: str | None,
    ctx: ConversionContext,
    out: BundleBuilder,
    message_key: str,
) -> dict[str, str]:
    """An Encounter: keyed by the visit number (PV1-19) when sent, else by the message."""
    visit_id = identifier(pv1, 19, ctx=ctx)
    visit = visit_id["value"] if visit_id else None
    start = dtm(pv1.get(44, 1), ctx.local_zone)
    end = dtm(pv1.get(45, 1), ctx.local_zone)
    if ends_before_start(start, end):
        out.warn(pv1.location(45), "the discharge time is before the admit time (PV1-44); left out")
        end = None
    status = _EVENT_STATUS.get(
        event or "", "finished" if end else "in-progress" if start else "unknown"
    )
    if end and status in {"in-progress", "arrived"} and event not in {"A13"}:
        status = "finished"
    known = ENCOUNTER_CLASS.get((pv1.get(2) or "").upper())
    # Encounter.class is required: a class not sent, or not in table 0004, is unknown
    # (v3 NullFlavor), never a guess such as ambulatory.
    encounter_class = (
        {"system": _ACT_CODE, "code": known[0], "display": known[1]} if known else _UNKNOWN_CLASS
    )
    if pv1.get(2) and not known:
        out.warn(pv1.location(2), "patient class is not in table 0004; class unknown")
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        # A visit number is unique within its authority and patient.
        "id": resource_id(
            ctx.partner, "Encounter", patient["reference"], visit_id.get("system"), visit
        )
        if visit_id and visit
        else resource_id(ctx.partner, "Encounter", "message", message_key),
        "status": status,
        "class": encounter_class,
        "subject": patient,
    }
    if visit_id:
        visit_id.setdefault(
            "type",
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "VN"}]},
        )
        visit_id.setdefault("system", f"urn:fhir-intake:partner:{ctx.partner}:visit")
        resource["identifier"] = [visit_id]
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    if period:
        resource["period"] = period
    participants = []
    for n, code_, display_ in _PARTICIPANTS:
        for rep in range(1, pv1.repetitions(n) + 1):
            who = practitioner(pv1, n, rep, ctx, out)
            if who:
                participants.append(
                    {
                        "type": [
                            {
                                "coding": [
                                    {"system": _PARTICIPATION, "code": code_, "display": display_}
                                ]
                            }
                        ],
                        "individual": who,
                    }
                )
    if participants:
        resource["participant"] = participants
    place = location(pv1, 3, ctx, out)
    if place:
        resource["location"] = [{"location": place}]
    hospitalization: dict[str, Any] = {}
    admit = codeable_concept(pv1, 14, ctx=ctx)
    if admit:
        hospitalization["admitSource"] = admit
    disposition = codeable_concept(pv1, 36, ctx=ctx)
    if disposition:
        hospitalization["dischargeDisposition"] = disposition
    if hospitalization:
        resource["hospitalization"] = hospitalization
    service = codeable_concept(pv1, 10, ctx=ctx)
    if service:
        resource["serviceType"] = service
    if pv2 is not None:
        reason = codeable_concept(pv2, 3, ctx=ctx)
        if reason:
            resource["reasonCode"] = [reason]
    return out.add(resource)
