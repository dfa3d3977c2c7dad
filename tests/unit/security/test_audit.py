"""AuditEvents for submissions and administrative actions, and the auditor's search."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from shared.security.audit import (
    AdminAction,
    AuditQuery,
    admin_audit_event,
    drop_refused_audit_event,
    ingest_audit_event,
    upload_audit_event,
)

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_events_are_valid_r4_and_name_the_partner() -> None:
    ingest = ingest_audit_event("lab", "ing-1", "lab/2026/03/02/abc.hl7", 512, AT)
    admin = admin_audit_event(AdminAction.SUBSCRIPTION_DELETE, "ops", "Subscription/s1", AT)
    for event in (ingest, admin):
        AuditEvent.model_validate(event)
    assert ingest["agent"][0]["who"]["identifier"] == {
        "system": "urn:fhir-intake:partner",
        "value": "lab",
    }
    assert admin["action"] == "D" and admin["entity"][0]["what"]["reference"] == "Subscription/s1"
    assert ingest["id"] == ingest_audit_event("lab", "ing-1", "x", 1, AT)["id"]  # retry-stable


def test_upload_and_refused_drop_events_are_r4_and_say_who_is_not_the_requestor() -> None:
    issued = upload_audit_event("lab", "u" * 32, AT, AT)
    refused = drop_refused_audit_event("lab", "d" * 32, None, "not issued", AT)
    for event in (issued, refused):
        AuditEvent.model_validate(event)
        assert event["type"]["code"] == "110107"  # DICOM Import
    assert issued["agent"][0]["requestor"] is True and issued["outcome"] == "0"
    assert refused["outcome"] == "4"
    assert [a["requestor"] for a in refused["agent"]] == [True, False]  # writer unknown
    assert refused["agent"][1]["who"]["identifier"]["value"] == "lab"
    # one event per drop, however often its message is delivered
    later = drop_refused_audit_event("lab", "d" * 32, None, "not issued", datetime.now(UTC))
    assert later["id"] == refused["id"]


class Trail:
    def __init__(self, by_day: dict[date, list[dict[str, Any]]]) -> None:
        self.by_day = by_day
        self.read: list[date] = []

    def events_on(self, day: date) -> Iterator[dict[str, Any]]:
        self.read.append(day)
        yield from self.by_day.get(day, [])


def consent_event(patient: str, partner: str) -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "agent": [{"who": {"identifier": {"system": "urn:fhir-intake:partner", "value": partner}}}],
        "entity": [{"what": {"reference": f"Patient/{patient}"}}],
    }


def test_search_by_patient_and_agent_newest_day_first() -> None:
    trail = Trail(
        {
            date(2026, 3, 1): [consent_event("p1", "lab")],
            date(2026, 3, 2): [consent_event("p1", "care"), consent_event("p2", "lab")],
        }
    )
    query = AuditQuery(trail)
    found = query.search(date(2026, 3, 1), date(2026, 3, 2), patient="p1")
    assert [e["agent"][0]["who"]["identifier"]["value"] for e in found] == ["care", "lab"]
    assert len(query.search(date(2026, 3, 1), date(2026, 3, 2), agent="lab")) == 2
    both = query.search(date(2026, 3, 1), date(2026, 3, 2), patient="Patient/p2", agent="lab")
    assert len(both) == 1
    assert query.search(date(2026, 3, 1), date(2026, 3, 2), agent="urn:fhir-intake:partner|care")
    assert query.search(date(2026, 3, 1), date(2026, 3, 2), patient="p9") == []


def test_count_stops_reading_and_ranges_are_bounded() -> None:
    trail = Trail({date(2026, 3, 2): [consent_event("p1", "lab")] * 5})
    query = AuditQuery(trail)
    assert len(query.search(date(2026, 2, 1), date(2026, 3, 2), count=3)) == 3
    assert trail.read == [date(2026, 3, 2)]  # enough found on the first day read
    with pytest.raises(ValueError, match="31 days"):
        query.search(date(2026, 1, 1), date(2026, 3, 2))
    with pytest.raises(ValueError):
        query.search(date(2026, 3, 2), date(2026, 3, 1))
