"""Immunization from RXA (with RXR route and site), as VXU messages carry it."""

from __future__ import annotations

from typing import Any

from ...context import BundleBuilder, ConversionContext
from ...ids import resource_id
from ..datatypes import codeable_concept, dtm, local_date, quantity_value
from ..message import Segment
from .people import organization_named, practitioner

__all__ = ["immunization"]

_COMPLETION = {"CP": "completed", "PA": "completed", "RE": "not-done", "NA": "not-done"}


def immunization(
    rxa: Segment,
    rxr: Segment | None,
    patient: dict[str, str],
    ctx: ConversionContext,
    out: BundleBuilder,
    key: str,
) -> dict[str, str] | None:
    """RXA: .3 administered at, .5 vaccine, .6/.7 dose, .10 administering provider,
    .15 lot, .17 manufacturer (MVX), .18 refusal reason, .20 completion, .21 action."""
    vaccine = codeable_concept(rxa, 5, ctx=ctx)
    when = dtm(rxa.get(3, 1), ctx.local_zone)
    if vaccine is None or when is None:
        out.warn(
            rxa.location(5 if vaccine is None else 3),
            "RXA needs a vaccine (RXA-5) and a time (RXA-3); immunization left out",
        )
        return None
    status = _COMPLETION.get((rxa.get(20) or "CP").upper(), "completed")
    if (rxa.get(21) or "").upper() == "D":
        status = "entered-in-error"
    resource: dict[str, Any] = {
        "resourceType": "Immunization",
        # A VXU often repeats the patient's whole history: one shot is one patient,
        # vaccine and time, whichever message carries it.
        "id": resource_id(
            ctx.partner,
            "Immunization",
            patient["reference"],
            vaccine.get("coding", [{}])[0].get("code", "") or vaccine.get("text", ""),
            dtm(rxa.get(3, 1), ctx.id_zone),
        ),
        "status": status,
        "vaccineCode": vaccine,
        "patient": patient,
        "occurrenceDateTime": when,
    }
    dose = quantity_value(rxa.get(6))
    if dose is not None and dose != 999:
        quantity: dict[str, Any] = {"value": dose}
        if rxa.get(7, 1):
            quantity.update(
                unit=rxa.get(7, 2) or rxa.get(7, 1),
                system="http://unitsofmeasure.org",
                code=rxa.get(7, 1),
            )
        resource["doseQuantity"] = quantity
    lot = rxa.get(15)
    if lot:
        resource["lotNumber"] = lot
    expires = local_date(rxa.get(16, 1))  # RXA-16, a date
    if expires and len(expires) == 10:
        resource["expirationDate"] = expires
    source = rxa.get(9, 1)  # NIP001: 00 new record (first hand), 01-08 historical
    if source and source.isdigit():
        resource["primarySource"] = source == "00"
        origin = codeable_concept(rxa, 9, ctx=ctx) if source != "00" else None
        if origin:
            resource["reportOrigin"] = origin
    maker = rxa.get(17, 1)
    if maker:
        org = organization_named(
            rxa.get(17, 2) or maker, maker, "http://hl7.org/fhir/sid/mvx", ctx, out
        )
        if org:
            resource["manufacturer"] = org
    giver = practitioner(rxa, 10, 1, ctx, out)
    if giver:
        resource["performer"] = [{"actor": giver}]
    if status == "not-done":
        reason = codeable_concept(rxa, 18, ctx=ctx)
        if reason:
            resource["statusReason"] = reason
    if rxr is not None:
        route = codeable_concept(rxr, 1, ctx=ctx)
        if route:
            resource["route"] = route
        site = codeable_concept(rxr, 2, ctx=ctx)
        if site:
            resource["site"] = site
    return out.add(resource)
