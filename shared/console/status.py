"""An ingestion's state as a whole, read from the columns its stages wrote."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .models import IngestionStatus

__all__ = ["STAGES", "ingestion_status"]

# The journey's stages in the order a message passes them (column prefixes).
STAGES = ("received", "normalize", "consent", "store", "forward", "notify", "deliver")


def ingestion_status(row: Mapping[str, Any]) -> IngestionStatus:
    """What happened to an ingestion. A stage's column says ``failed`` until a retry of
    that stage succeeds and overwrites it, so any such column means the message is being
    retried or waits in a poison queue."""
    store = row.get("store_status")
    normalize = row.get("normalize_status")
    consent = row.get("consent_status")
    if any(row.get(f"{s}_status") == "failed" for s in STAGES):
        return IngestionStatus.FAILED
    if normalize == "rejected":
        return IngestionStatus.REJECTED
    if consent == "denied":
        return IngestionStatus.DENIED
    if store == "stored":
        forward = row.get("forward_status")  # the existing FHIR server's answer, if any
        if normalize == "partial" or consent == "partial" or forward in ("partial", "refused"):
            return IngestionStatus.PARTIAL
        return IngestionStatus.STORED
    return IngestionStatus.IN_PROGRESS
