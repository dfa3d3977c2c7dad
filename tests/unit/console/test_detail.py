"""One ingestion's page: a partner sees only its own subscriptions' deliveries, another
partner's ingestion is the same None as an unknown one, and the payload view is an
operator's, audited before anything is read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.console import ConsoleForbiddenError, IngestionDetail, Viewer
from shared.notify.models import Delivery, DeliveryState, Event
from shared.platform.names import Container
from shared.security.models import Role

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
ROW = {
    "PartitionKey": "clinic-a",
    "RowKey": "i-1",
    "received_at": NOW,
    "received_status": "stored",
    "received_blob": "clinic-a/2026/12/04/abc.hl7",
    "store_status": "stored",
    "store_written": json.dumps(["Patient/p1/_history/1", "Encounter/e1/_history/2"]),
}
OPERATOR = Viewer("ops", frozenset({Role.ADMIN}))
CLINIC_A = Viewer("clinic-a", frozenset({Role.INGEST}))
CLINIC_B = Viewer("clinic-b", frozenset({Role.INGEST}))


class Rows:
    def find(self, query: str, parameters: Any, limit: int) -> tuple[list[dict[str, Any]], bool]:
        return [], True

    def get(self, partner: str, ingestion_id: str) -> dict[str, Any] | None:
        return dict(ROW) if (partner, ingestion_id) == ("clinic-a", "i-1") else None


class Blobs:
    def __init__(self, reads: list[str]) -> None:
        self.reads = reads

    def head(self, container: Container, name: str, limit: int) -> tuple[bytes, int] | None:
        self.reads.append(f"read {container}/{name}")
        return (b"MSH|^~\\&|...", 12) if container is Container.RAW else None

    def names(self, container: Container, prefix: str, limit: int) -> list[str]:
        return []


class Audit:
    def __init__(self, reads: list[str]) -> None:
        self.reads = reads

    def write(self, event: dict[str, Any]) -> str:
        self.reads.append(f"audit {event['subtype'][0]['code']}")
        return "x"

    def write_batch(self, events: Any, work_id: str) -> str | None:
        return None


def _delivery(subscription: str, key: str) -> Delivery | None:
    return Delivery(
        subscription=subscription,
        key=key,
        number=1,
        event=Event.CREATE,
        state=DeliveryState.DELIVERED,
        correlation_id="i-1",
        partner="clinic-a",
        blob="x",
        created=NOW,
    )


def _detail(reads: list[str]) -> IngestionDetail:
    subscriptions = [("s-ops", "ops", "Encounter"), ("s-a", "clinic-a", "Encounter")]
    return IngestionDetail(
        Rows(),
        lambda p, i: (False, None),
        lambda: subscriptions,
        _delivery,
        Blobs(reads),
        Audit(reads),
        lambda: NOW,
    )


def test_a_partner_sees_its_own_subscriptions_deliveries_only() -> None:
    detail = _detail([])
    mine = detail.view(CLINIC_A, "clinic-a", "i-1")
    assert mine is not None and mine.written == ["Patient/p1/_history/1", "Encounter/e1/_history/2"]
    assert [(d.subscription, d.resource) for d in mine.deliveries] == [
        ("s-a", "Encounter/e1/_history/2")
    ]
    everyone = detail.view(OPERATOR, "clinic-a", "i-1")
    assert everyone is not None and {d.subscription for d in everyone.deliveries} == {
        "s-ops",
        "s-a",
    }


def test_another_partners_ingestion_is_as_unknown() -> None:
    detail = _detail([])
    assert detail.view(CLINIC_B, "clinic-a", "i-1") is None
    assert detail.view(CLINIC_B, "clinic-b", "i-1") is None


def test_payloads_are_an_operators_and_audited_before_they_are_read() -> None:
    reads: list[str] = []
    detail = _detail(reads)
    with pytest.raises(ConsoleForbiddenError):
        detail.payload(CLINIC_A, "clinic-a", "i-1")
    assert reads == []
    view = detail.payload(OPERATOR, "clinic-a", "i-1")
    assert view is not None and view.raw.startswith("MSH|") and view.raw_bytes == 12
    assert reads[0] == "audit console-payload-view"
    assert reads[1] == "read raw/clinic-a/2026/12/04/abc.hl7"
