"""Each ingestion's journey, one table row per ingestion (partner, correlation id).

Stages merge their own columns into the row (``normalize_status``, ``normalize_at``,
counts, issues), so each stage's write is independent and idempotent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.platform.errors import StorageUnavailableError
from shared.platform.telemetry import note_report

__all__ = [
    "IngestionLog",
    "StageReport",
    "TableIngestionLog",
    "failed_attempt",
    "wrong_envelope",
]

_MAX_ISSUES_JSON = 30_000  # a table property holds at most 64 KiB


@dataclass(frozen=True)
class StageReport:
    """What one stage did with one ingestion."""

    stage: str
    outcome: str  # e.g. "normalized", "partial", "rejected"
    counts: dict[str, int] = field(default_factory=dict)
    issues: list[dict[str, Any]] = field(default_factory=list)  # OperationOutcome issues
    labels: dict[str, str] = field(default_factory=dict)  # ids only: blob name, channel
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


def failed_attempt(stage: str, queue: str, error: str, attempt: int) -> StageReport:
    """The report of a stage that raised on a message: the queue retries it, and after the
    last attempt keeps it in the poison queue. ``error`` is an exception type, never its
    text (which may quote patient data)."""
    return StageReport(
        stage=stage,
        outcome="failed",
        counts={"attempt": attempt},  # at the last, the message waits in the poison queue
        issues=[
            {
                "severity": "error",
                "code": "exception",
                "diagnostics": f"attempt {attempt} failed ({error}); the message is retried, "
                f"and after the last attempt it waits in {queue}-poison until the cause is "
                f"fixed and 'intake replay {queue}' sends it back",
            }
        ],
    )


def wrong_envelope(stage: str, expected: str, got: str) -> StageReport:
    """The report of a stage handed an envelope it does not take (final: no retry helps)."""
    return StageReport(
        stage=stage,
        outcome="rejected",
        issues=[
            {
                "severity": "error",
                "code": "not-supported",
                "diagnostics": f"the {stage} stage takes {expected} envelopes with a blob, "
                f"got {got}",
            }
        ],
    )


class IngestionLog(Protocol):
    """Port: where the journey is kept."""

    def record(self, partner: str, correlation_id: str, *reports: StageReport) -> None:
        """Merge stages' reports into the ingestion's row (one write)."""

    def get(self, partner: str, correlation_id: str) -> dict[str, Any] | None:
        """The ingestion's row, or None."""


class TableIngestionLog:
    """``IngestionLog`` on the ``ingestions`` table."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def record(self, partner: str, correlation_id: str, *reports: StageReport) -> None:
        """Merge the reports into the row; their outcomes and counts also go on the
        current span (every stage reports here, so none needs telemetry code of its own)."""
        row: dict[str, Any] = {"PartitionKey": partner, "RowKey": correlation_id}
        for report in reports:
            row.update(_columns(report))
            note_report(report.stage, report.outcome, report.counts)
        try:
            self._table.upsert_entity(row, mode=UpdateMode.MERGE)
        except AzureError as exc:
            raise StorageUnavailableError(f"recording status failed: {type(exc).__name__}") from exc

    def get(self, partner: str, correlation_id: str) -> dict[str, Any] | None:
        """The ingestion's row, or None."""
        try:
            return dict(self._table.get_entity(partner, correlation_id))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise StorageUnavailableError(f"reading status failed: {type(exc).__name__}") from exc


def _columns(report: StageReport) -> dict[str, Any]:
    """A report as the row's columns of its stage (issues cut to fit a property)."""
    issues = json.dumps(report.issues)
    if len(issues) > _MAX_ISSUES_JSON:
        kept = report.issues[: max(1, len(report.issues) * _MAX_ISSUES_JSON // len(issues) - 1)]
        issues = json.dumps(
            [
                *kept,
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": f"{len(report.issues) - len(kept)} more issues",
                },
            ]
        )
    return {
        f"{report.stage}_status": report.outcome,
        f"{report.stage}_at": report.at,
        f"{report.stage}_issues": issues,
        **{f"{report.stage}_{name}": value for name, value in report.counts.items()},
        **{f"{report.stage}_{name}": value for name, value in report.labels.items()},
    }
