"""Searching ingestions: a partner sees its own rows whatever it asks for, filters go to
the table as bound parameters, and a patient identifier is looked up by its holders and
their ingestions (and audited), never matched in clear."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.console import (
    ConsoleForbiddenError,
    IngestionFilter,
    IngestionSearch,
    IngestionStatus,
    Viewer,
)
from shared.records.models import IngestionRef
from shared.records.people import IdentifierHolder
from shared.security.models import Role

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
OPERATOR = Viewer("ops", frozenset({Role.ADMIN}))
CLINIC_A = Viewer("clinic-a", frozenset({Role.INGEST}))


def _row(partner: str, rid: str, minutes: int, **columns: Any) -> dict[str, Any]:
    return {
        "PartitionKey": partner,
        "RowKey": rid,
        "received_at": NOW - timedelta(minutes=minutes),
        "received_status": "stored",
        **columns,
    }


ROWS = [
    _row("clinic-a", "a1", 5, received_message_id="M-1", store_status="stored"),
    _row("clinic-a", "a2", 50, received_message_id="M-2", normalize_status="rejected"),
    _row("clinic-b", "b1", 1, received_message_id="M-1", store_status="stored"),
    _row("clinic-b", "b2", 2, normalize_source_id="doc-9", normalize_message_type="CCD"),
]


class Rows:
    """Every row, whatever the filter (the search must still hold to what it may show)."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, dict[str, Any]]] = []

    def find(
        self, query: str, parameters: Mapping[str, Any], limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        self.queries.append((query, dict(parameters)))
        return [dict(r) for r in ROWS][:limit], True

    def get(self, partner: str, ingestion_id: str) -> dict[str, Any] | None:
        return next(
            (dict(r) for r in ROWS if (r["PartitionKey"], r["RowKey"]) == (partner, ingestion_id)),
            None,
        )


class Audit:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def write(self, event: dict[str, Any]) -> str:
        self.events.append(event)
        return "x"

    def write_batch(self, events: Any, work_id: str) -> str | None:
        return None


HOLDERS = {
    ("urn:oid:1.2.3", "MRN-7"): [
        IdentifierHolder("pat-a", "clinic-a"),
        IdentifierHolder("pat-b", "clinic-b"),
    ]
}
INGESTIONS = {
    "pat-a": [IngestionRef("clinic-a", "a1"), IngestionRef("clinic-a", "a2")],
    "pat-b": [IngestionRef("clinic-b", "b1")],
}


def _search() -> tuple[IngestionSearch, Rows, Audit]:
    rows, audit = Rows(), Audit()
    search = IngestionSearch(
        rows,
        lambda s, v: HOLDERS.get((s, v), []),
        lambda p: INGESTIONS.get(p, []),
        audit,
        lambda: NOW,
    )
    return search, rows, audit


def test_an_operator_sees_every_partner_newest_first() -> None:
    search, rows, _ = _search()
    found = search.search(OPERATOR, IngestionFilter())
    assert [(i.partner, i.id, i.message_id) for i in found.items] == [
        ("clinic-b", "b1", "M-1"),
        ("clinic-b", "b2", "doc-9"),  # a document's own id, as normalization read it
        ("clinic-a", "a1", "M-1"),
        ("clinic-a", "a2", "M-2"),
    ]
    # No time given: the last day's (rows come in key order, so a window keeps the order
    # true); a message id or a patient is looked for in all of time.
    assert rows.queries == [("received_at ge @since", {"since": NOW - timedelta(days=1)})]
    search.search(OPERATOR, IngestionFilter(message_id="M-9"))
    assert "received_at" not in rows.queries[-1][0]


def test_a_partner_sees_its_own_whatever_it_asks() -> None:
    search, rows, _ = _search()
    found = search.search(CLINIC_A, IngestionFilter(message_id="M-1"))
    assert [i.id for i in found.items] == ["a1"]
    query, parameters = rows.queries[0]
    assert query == (
        "PartitionKey eq @partner and "
        "( received_message_id eq @message or normalize_source_id eq @message )"
    )
    assert parameters == {"partner": "clinic-a", "message": "M-1"}
    with pytest.raises(ConsoleForbiddenError):
        search.search(CLINIC_A, IngestionFilter(partner="clinic-b"))


def test_status_and_time_narrow_the_search() -> None:
    search, rows, _ = _search()
    since = NOW - timedelta(minutes=10)
    found = search.search(OPERATOR, IngestionFilter(since=since, status=IngestionStatus.STORED))
    assert {i.id for i in found.items} == {"a1", "b1"}
    assert rows.queries[0] == (
        "received_at ge @since and store_status eq 'stored'",
        {"since": since},
    )
    by_document = search.search(OPERATOR, IngestionFilter(message_id="doc-9"))
    assert [(i.id, i.message_type) for i in by_document.items] == [("b2", "CCD")]
    rejected = search.search(OPERATOR, IngestionFilter(status=IngestionStatus.REJECTED))
    assert [i.id for i in rejected.items] == ["a2"]
    assert rows.queries[-1][0].endswith("normalize_status eq 'rejected'")
    search.search(OPERATOR, IngestionFilter(status=IngestionStatus.FAILED))
    assert "( received_status eq 'failed' or normalize_status eq 'failed'" in rows.queries[-1][0]


def test_a_patient_identifier_finds_the_ingestions_that_carried_its_patients() -> None:
    search, rows, audit = _search()
    found = search.search(OPERATOR, IngestionFilter(patient="urn:oid:1.2.3|MRN-7"))
    assert {i.id for i in found.items} == {"a1", "a2", "b1"}
    assert found.patients == ("pat-a", "pat-b")
    assert not rows.queries  # by key: no scan
    (event,) = audit.events
    assert event["subtype"][0]["code"] == "console-search"
    assert {e["what"]["reference"] for e in event["entity"][1:]} == {
        "Patient/pat-a",
        "Patient/pat-b",
    }
    assert "MRN-7" not in str(event)  # the identifier itself is not in the trail

    mine = search.search(CLINIC_A, IngestionFilter(patient="urn:oid:1.2.3|MRN-7"))
    assert {i.id for i in mine.items} == {"a1", "a2"} and mine.patients == ("pat-a",)
    assert search.search(OPERATOR, IngestionFilter(patient="urn:oid:9|nobody")).items == []
    with pytest.raises(ValueError, match="system\\|value"):
        search.search(OPERATOR, IngestionFilter(patient="MRN-7"))
