"""An ingestion's status as a whole, from the columns its stages wrote."""

from __future__ import annotations

import pytest

from shared.console.models import IngestionStatus
from shared.console.status import ingestion_status


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"received_status": "stored"}, IngestionStatus.IN_PROGRESS),
        (
            {"received_status": "stored", "normalize_status": "normalized"},
            IngestionStatus.IN_PROGRESS,
        ),
        ({"received_status": "stored", "normalize_status": "failed"}, IngestionStatus.FAILED),
        (
            {"normalize_status": "normalized", "consent_status": "failed"},
            IngestionStatus.FAILED,
        ),
        ({"normalize_status": "rejected"}, IngestionStatus.REJECTED),
        (
            {"normalize_status": "normalized", "consent_status": "denied"},
            IngestionStatus.DENIED,
        ),
        (
            {
                "normalize_status": "partial",
                "consent_status": "permitted",
                "store_status": "stored",
            },
            IngestionStatus.PARTIAL,
        ),
        (
            {
                "normalize_status": "normalized",
                "consent_status": "partial",
                "store_status": "stored",
            },
            IngestionStatus.PARTIAL,
        ),
        (
            {
                "normalize_status": "normalized",
                "consent_status": "permitted",
                "store_status": "stored",
            },
            IngestionStatus.STORED,
        ),
        # Stored, but the existing FHIR server refused what was forwarded to it.
        (
            {
                "normalize_status": "normalized",
                "store_status": "stored",
                "forward_status": "refused",
            },
            IngestionStatus.PARTIAL,
        ),
        # Stored, but its notifications keep failing: an operator must look.
        ({"store_status": "stored", "notify_status": "failed"}, IngestionStatus.FAILED),
    ],
)
def test_status(row: dict[str, str], expected: IngestionStatus) -> None:
    assert ingestion_status(row) is expected
