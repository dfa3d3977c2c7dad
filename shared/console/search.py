"""Finding ingestions: by partner, time, status, source message id or patient identifier.

The journey table is the index. Its partition is the partner and every stage's columns
are on one row, so a search is one filtered query (the Table service filters on the
server), read up to ``SCAN_LIMIT`` rows and sorted newest first here. A patient
identifier is never stored in clear: it is looked up by its hash in ``identifiers``
(as FHIR search does), and the Patients found lead to the ingestions that carried them
(the ``~ingestion`` rows erasure keeps). A viewer who is not an operator sees only its
own partner's ingestions, whatever it asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.platform.ports import AuditLog
from shared.records.models import IngestionRef
from shared.records.people import MAX_IDENTIFIER, IdentifierHolder
from shared.security.audit import AdminAction, admin_audit_event

from .errors import ConsoleForbiddenError
from .models import IngestionFilter, IngestionStatus, IngestionSummary, Viewer
from .status import STAGES, ingestion_status

__all__ = ["RESULTS", "SCAN_LIMIT", "IngestionRows", "IngestionSearch", "SearchResult", "visible"]

SCAN_LIMIT = 2000  # journey rows one search reads at most
WINDOW = timedelta(days=1)  # searched when no time is given (a message id or patient: all)
RESULTS = 100  # rows it shows
PATIENT_INGESTIONS = 200  # ingestions of the Patients one identifier finds, at most


class IngestionRows(Protocol):
    """Port: journey rows (``TableIngestionRows``)."""

    def find(
        self, query: str, parameters: Mapping[str, Any], limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Rows matching an OData filter, at most ``limit``, read within the adapter's
        time budget; and whether that was all of them."""

    def get(self, partner: str, ingestion_id: str) -> dict[str, Any] | None:
        """One row, or None."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    """What a search found: the newest ``RESULTS``, and whether there was more."""

    items: list[IngestionSummary]
    matched: int
    truncated: bool  # the scan stopped at its limit: narrow the search
    patients: tuple[str, ...] = ()  # the Patients an identifier search found (our ids)


class IngestionSearch:
    """Searches the journey rows a viewer may see."""

    def __init__(
        self,
        rows: IngestionRows,
        holders: Callable[[str, str], list[IdentifierHolder]],
        ingestions_of: Callable[[str], list[IngestionRef]],
        audit: AuditLog,
        clock: Callable[[], datetime],
    ) -> None:
        self._rows = rows
        self._holders = holders
        self._ingestions_of = ingestions_of
        self._audit = audit
        self._clock = clock

    def search(self, viewer: Viewer, wanted: IngestionFilter) -> SearchResult:
        """The ingestions that match, newest first.

        Raises:
            ConsoleForbiddenError: a partner asked for another partner's ingestions.
            ValueError: a patient identifier that is not ``system|value``.
            StorageUnavailableError: storage failed.
        """
        partner = wanted.partner
        if partner and not viewer.may_see(partner):
            raise ConsoleForbiddenError("a partner sees only its own ingestions")
        if not viewer.operator:
            partner = viewer.partner
        if (
            wanted.since is None
            and wanted.until is None
            and not (wanted.message_id or wanted.patient)
        ):
            # Rows come in key order, not time order: a window keeps "newest first" true.
            wanted = replace(wanted, since=self._clock() - WINDOW)
        patients: tuple[str, ...] = ()
        if wanted.patient:
            rows, patients = self._by_patient(viewer, wanted.patient, partner)
            truncated = len(rows) >= PATIENT_INGESTIONS
            self._audit.write(  # who looked for whom (our Patient ids; never the identifier)
                admin_audit_event(
                    AdminAction.CONSOLE_SEARCH,
                    viewer.partner,
                    "urn:fhir-intake:ingestions",
                    self._clock(),
                    {"patients": str(len(patients)), "ingestions": str(len(rows))},
                    patients,
                )
            )
        else:
            rows, complete = self._rows.find(*_query(partner, wanted), SCAN_LIMIT)
            truncated = not complete
        found = [
            s
            for s in (_summary(r) for r in rows if _matches(r, partner, wanted))
            if wanted.status is None or s.status is wanted.status
        ]
        found.sort(key=lambda s: (s.received is not None, s.received), reverse=True)
        return SearchResult(found[:RESULTS], len(found), truncated, patients)

    def _by_patient(
        self, viewer: Viewer, identifier: str, partner: str | None
    ) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
        """Rows of the ingestions that carried the Patients holding an identifier."""
        system, bar, value = identifier.strip().rpartition("|")
        if not bar or not system or not value or len(identifier) > 2 * MAX_IDENTIFIER:
            raise ValueError("a patient identifier is system|value")
        holders = [h for h in self._holders(system, value) if viewer.may_see(h.partner)]
        refs: dict[tuple[str, str], None] = {}
        for holder in holders:
            if len(refs) >= PATIENT_INGESTIONS:
                break  # the result says it was cut
            for ref in self._ingestions_of(holder.patient_id):
                if viewer.may_see(ref.partner) and (partner is None or ref.partner == partner):
                    refs[(ref.partner, ref.correlation_id)] = None
        refs = dict(list(refs.items())[:PATIENT_INGESTIONS])
        rows = [r for r in (self._rows.get(p, c) for p, c in refs) if r is not None]
        return rows, tuple(sorted({h.patient_id for h in holders}))


# What the table can tell of a status on the server (spaced out: see ``_query``).
_STATUS_FILTERS = {
    IngestionStatus.FAILED: "( "
    + " or ".join(f"{stage}_status eq 'failed'" for stage in STAGES)
    + " )",
    IngestionStatus.REJECTED: "normalize_status eq 'rejected'",
    IngestionStatus.DENIED: "consent_status eq 'denied'",
    IngestionStatus.STORED: "store_status eq 'stored'",
    IngestionStatus.PARTIAL: "store_status eq 'stored'",
}


def _query(partner: str | None, wanted: IngestionFilter) -> tuple[str, dict[str, Any]]:
    """The OData filter of a search (parameters bound, never spliced)."""
    parts: list[str] = []
    parameters: dict[str, Any] = {}
    if partner:
        parts.append("PartitionKey eq @partner")
        parameters["partner"] = partner
    if wanted.since:
        parts.append("received_at ge @since")
        parameters["since"] = wanted.since
    if wanted.until:
        parts.append("received_at lt @until")
        parameters["until"] = wanted.until
    if wanted.status is not None and wanted.status in _STATUS_FILTERS:
        parts.append(_STATUS_FILTERS[wanted.status])  # narrowed here, exact in ``search``
    if wanted.message_id:  # as the door read it (HL7 v2), or as normalization did (any)
        # Spaced out: the SDK finds parameters by splitting the filter at spaces.
        parts.append("( received_message_id eq @message or normalize_source_id eq @message )")
        parameters["message"] = wanted.message_id.strip()
    return " and ".join(parts), parameters


def _matches(row: Mapping[str, Any], partner: str | None, wanted: IngestionFilter) -> bool:
    """The filter applied to a row read by key (an identifier search)."""
    received = row.get("received_at")
    return (
        (partner is None or row.get("PartitionKey") == partner)
        and (wanted.since is None or (isinstance(received, datetime) and received >= wanted.since))
        and (wanted.until is None or (isinstance(received, datetime) and received < wanted.until))
        and (
            not wanted.message_id
            or wanted.message_id.strip()
            in (row.get("received_message_id"), row.get("normalize_source_id"))
        )
    )


def _message_id(row: Mapping[str, Any]) -> str:
    """The sender's id of the payload: MSH-10 as the door read it, else as normalized."""
    return str(row.get("received_message_id") or row.get("normalize_source_id") or "")


def _summary(row: Mapping[str, Any]) -> IngestionSummary:
    received = row.get("received_at")
    resources = row.get("normalize_resources")
    return IngestionSummary(
        partner=str(row["PartitionKey"]),
        id=str(row["RowKey"]),
        received=received if isinstance(received, datetime) else None,
        status=ingestion_status(row),
        channel=str(row.get("received_channel") or ""),
        message_id=_message_id(row),
        message_type=str(
            row.get("normalize_message_type") or row.get("received_message_type") or ""
        ),
        resources=resources if isinstance(resources, int) else None,
    )


def visible(viewer: Viewer, partners: Iterable[str]) -> list[str]:
    """The partners a viewer may pick in a search."""
    return sorted(p for p in partners if viewer.may_see(p))
