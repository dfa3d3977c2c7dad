"""Which ingestions carried a patient's data: what erasure needs to find source payloads.

The stages that see a Bundle (consent, store) note, for each patient in it, where the
raw payload, the normalized Bundle and the quarantine records of that ingestion are,
and how many patients the payload concerned (a batch shared with others is not erased
whole for one of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .models import IngestionRef

__all__ = ["RAW_SYSTEM", "ingestion_ref"]

RAW_SYSTEM = "urn:fhir-intake:raw"  # Provenance.entity identifier of the raw payload


def _raw(bundle: Mapping[str, Any]) -> str:
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") or {}
        if resource.get("resourceType") != "Provenance":
            continue
        for entity in resource.get("entity") or ():
            identifier = (entity.get("what") or {}).get("identifier") or {}
            if identifier.get("system") == RAW_SYSTEM and identifier.get("value"):
                return str(identifier["value"])
    return ""


def ingestion_ref(
    bundle: Mapping[str, Any],
    partner: str,
    correlation_id: str,
    normalized: str,
    quarantine: str,
    patients: Iterable[str],
) -> IngestionRef:
    """The ingestion a Bundle came from, for the patients it concerned."""
    return IngestionRef(
        partner=partner,
        correlation_id=correlation_id,
        raw=_raw(bundle),
        normalized=normalized,
        quarantine=quarantine,
        patients=max(1, len(set(patients))),
    )
