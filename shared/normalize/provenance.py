"""The Provenance every conversion adds: what was made, from which payload, by whom."""

from __future__ import annotations

from typing import Any

from .context import BundleBuilder, ConversionContext
from .ids import resource_id

__all__ = ["SEGMENT_EXTENSION", "add_provenance"]

SEGMENT_EXTENSION = "urn:fhir-intake:StructureDefinition:hl7v2-segment"
_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def add_provenance(
    out: BundleBuilder,
    ctx: ConversionContext,
    *,
    key: str,
    activity: str,
    source_id: str | None,
    sender: dict[str, str] | None = None,
    occurred: str | None = None,
    verbatim: list[str] | None = None,
) -> None:
    """Add a Provenance targeting every resource in ``out``.

    Args:
        out: the bundle being built; the Provenance is added last.
        ctx: partner, raw payload location and receipt time.
        key: what makes this Provenance's id (the payload's identity).
        activity: words for Provenance.activity.text ("converted from HL7 v2 ADT^A01").
        source_id: the sender's id for the payload (MSH-10, Bundle.id, file name).
        sender: a reference to the sending Organization, when known.
        occurred: when the sender says the payload was made.
        verbatim: source text kept as it came (HL7 Z-segments).
    """
    targets = [{"reference": f"{t}/{i}"} for (t, i) in out.resources]
    provenance: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": resource_id(ctx.partner, "Provenance", key),
        "target": targets or [{"display": "nothing converted"}],
        "recorded": ctx.received.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "activity": {"coding": [{"system": _OPERATION, "code": "CREATE"}], "text": activity},
        "agent": [
            {
                "type": {"coding": [{"system": _PARTICIPANT, "code": "author"}]},
                "who": sender or {"display": f"partner {ctx.partner}"},
            }
        ],
    }
    if occurred and len(occurred) > 10:
        provenance["occurredDateTime"] = occurred
    entities: list[dict[str, Any]] = [
        {
            "role": "source",
            "what": {
                "identifier": {
                    "system": f"urn:fhir-intake:partner:{ctx.partner}:message",
                    "value": source_id or "unknown",
                },
                "display": activity,
            },
        }
    ]
    if ctx.source:
        entities.append(
            {
                "role": "source",
                "what": {"identifier": {"system": "urn:fhir-intake:raw", "value": ctx.source}},
            }
        )
    provenance["entity"] = entities
    if verbatim:
        provenance["extension"] = [{"url": SEGMENT_EXTENSION, "valueString": v} for v in verbatim]
    out.add(provenance)
