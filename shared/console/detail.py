"""One ingestion as the console shows it: the journey stage by stage, the ACK, the
versions written (with the FHIR read API's links), the notifications sent for them and
their attempts; and, for operators only and audited, the payload and quarantine records.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.intake.submissions import journey
from shared.notify.models import Delivery
from shared.platform.names import Container
from shared.platform.ports import AuditLog
from shared.security.audit import AdminAction, admin_audit_event

from .errors import ConsoleForbiddenError
from .models import DeliveryView, PayloadView, Viewer
from .search import IngestionRows
from .status import ingestion_status

__all__ = ["IngestionDetail", "IngestionView", "PayloadReader"]

PAYLOAD_BYTES = 256 * 1024  # of the raw payload the view shows
QUARANTINE_RECORDS = 20  # quarantine records it shows ...
QUARANTINE_BYTES = 64 * 1024  # ... each cut at this
DELIVERY_LOOKUPS = 200  # (subscription, version) pairs one view reads at most


class PayloadReader(Protocol):
    """Port: blobs as the console shows them (``StorageConsoleReader``)."""

    def head(self, container: Container, name: str, limit: int) -> tuple[bytes, int] | None:
        """The first bytes of a blob and its size, or None."""

    def names(self, container: Container, prefix: str, limit: int) -> list[str]:
        """Blob names under a prefix."""


@dataclass(frozen=True, slots=True)
class IngestionView:
    """What the journey page shows (ids, times, counts, issues our stages wrote)."""

    partner: str
    id: str
    status: str
    stages: list[dict[str, Any]]
    ack: str | None  # the application ACK (HL7 v2), once there is one
    written: list[str]  # Type/id/_history/version
    deliveries: list[DeliveryView]
    received: datetime | None


class IngestionDetail:
    """Builds the journey page and the payload view."""

    def __init__(
        self,
        rows: IngestionRows,
        ack: Callable[[str, str], tuple[bool, bytes | None]],
        subscriptions: Callable[[], list[tuple[str, str, str]]],
        delivery: Callable[[str, str], Delivery | None],
        payloads: PayloadReader,
        audit: AuditLog,
        clock: Callable[[], datetime],
    ) -> None:
        self._rows = rows
        self._ack = ack
        self._subscriptions = subscriptions  # (id, owner, resource type its criteria name)
        self._delivery = delivery
        self._payloads = payloads
        self._audit = audit
        self._clock = clock

    def _row(self, viewer: Viewer, partner: str, ingestion_id: str) -> dict[str, Any] | None:
        """The row, or None: also for another partner's, so nobody learns an id exists."""
        if not viewer.may_see(partner):
            return None
        return self._rows.get(partner, ingestion_id)

    def view(self, viewer: Viewer, partner: str, ingestion_id: str) -> IngestionView | None:
        """The journey page of one ingestion, or None.

        Raises:
            StorageUnavailableError: storage failed.
        """
        row = self._row(viewer, partner, ingestion_id)
        if row is None:
            return None
        shown = journey(row)
        written: list[str] = []
        for stage in shown["stages"]:
            if stage["stage"] == "store":
                written = [str(w) for w in stage.pop("written", [])]
        known, ack = self._ack(partner, ingestion_id)
        received = row.get("received_at")
        return IngestionView(
            partner=partner,
            id=ingestion_id,
            status=ingestion_status(row).value,
            stages=shown["stages"],
            ack=ack.decode("utf-8", "replace") if known and ack else None,
            written=written,
            deliveries=self._deliveries(viewer, written),
            received=received if isinstance(received, datetime) else None,
        )

    def _deliveries(self, viewer: Viewer, written: list[str]) -> list[DeliveryView]:
        """The deliveries of the versions written, to the subscriptions whose criteria
        name their type (point reads: a delivery row is keyed by subscription and
        version). A partner sees only its own subscriptions': that some other party
        follows this patient is not the sender's to know."""
        subscriptions = [
            (sub, wanted)
            for sub, owner, wanted in (self._subscriptions() if written else [])
            if viewer.operator or owner == viewer.partner
        ]
        found: list[DeliveryView] = []
        lookups = 0
        for reference in written:
            kind, rid, _, version = [*reference.split("/"), "", "", ""][:4]
            for subscription, wanted in subscriptions:
                if wanted != kind or lookups >= DELIVERY_LOOKUPS:
                    continue
                lookups += 1
                delivery = self._delivery(subscription, f"{kind}|{rid}|{version}")
                if delivery is not None:
                    found.append(
                        DeliveryView(
                            subscription=subscription,
                            resource=reference,
                            state=delivery.state.value,
                            attempts=[
                                {
                                    "number": a.number,
                                    "at": a.at,
                                    "status": a.status,
                                    "error": a.error,
                                    "duration_ms": a.duration_ms,
                                }
                                for a in delivery.attempts
                            ],
                        )
                    )
        return found

    def payload(self, viewer: Viewer, partner: str, ingestion_id: str) -> PayloadView | None:
        """The raw payload and quarantine records of one ingestion (patient data), or
        None; every showing leaves an AuditEvent first.

        Raises:
            ConsoleForbiddenError: the viewer may not open payloads.
            StorageUnavailableError: storage failed.
        """
        if not viewer.sees_payloads:
            raise ConsoleForbiddenError("only operators open payloads")
        row = self._row(viewer, partner, ingestion_id)
        if row is None:
            return None
        blob = str(row.get("received_blob") or "")
        received = row.get("received_at")
        self._audit.write(
            admin_audit_event(
                AdminAction.CONSOLE_PAYLOAD_VIEW,
                viewer.partner,
                f"urn:fhir-intake:ingestion:{partner}:{ingestion_id}",
                self._clock(),
                {"raw": blob, "purpose": "HOPERAT"},
            )
        )
        head = self._payloads.head(Container.RAW, blob, PAYLOAD_BYTES) if blob else None
        quarantine: list[tuple[str, str]] = []
        if isinstance(received, datetime):
            for day in (received, received + timedelta(days=1)):  # a stage may run past midnight
                prefix = f"{partner}/{day:%Y/%m/%d}/{ingestion_id}/"
                for name in self._payloads.names(Container.QUARANTINE, prefix, QUARANTINE_RECORDS):
                    record = self._payloads.head(Container.QUARANTINE, name, QUARANTINE_BYTES)
                    if record is not None:
                        quarantine.append((name.removeprefix(prefix), _pretty(record[0])))
        data, size = head if head is not None else (b"", 0)
        return PayloadView(
            raw=data.decode("utf-8", "replace"),
            raw_bytes=size,
            truncated=size > len(data),
            quarantine=quarantine[:QUARANTINE_RECORDS],
        )


def _pretty(data: bytes) -> str:
    """A quarantine record (JSON) indented for reading, or its text as it is."""
    text = data.decode("utf-8", "replace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text
