"""Refusals in the audit trail, without letting a flood of 401s fill an immutable store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.security.access_audit import MAX_EVENTS_PER_MINUTE, AccessAudit
from shared.security.audit import AccessRefusal


class Trail:
    def __init__(self) -> None:
        self.names: dict[str, dict[str, Any]] = {}  # append-only: a name is written once

    def write(self, event: dict[str, Any]) -> str:
        self.names.setdefault(event["id"], event)
        return event["id"]


def test_one_event_per_caller_route_and_minute_and_a_cap_per_instance() -> None:
    now = [datetime(2026, 12, 2, 10, 0, 1, tzinfo=UTC)]
    trail = Trail()
    audit = AccessAudit(trail, clock=lambda: now[0])  # type: ignore[arg-type]
    for _ in range(5):  # the same forged key on the same route
        audit.refused(
            AccessRefusal.AUTHENTICATION, "api-key 0123", "GET /api/x", authenticated=False
        )
    assert len(trail.names) == 1
    (event,) = trail.names.values()
    assert (
        event["outcome"] == "4"
        and event["agent"][0]["who"]["identifier"]["value"] == "api-key 0123"
    )
    for n in range(MAX_EVENTS_PER_MINUTE + 30):  # a new route each time
        audit.refused(AccessRefusal.AUTHENTICATION, "none", f"GET /api/fhir/Patient/{n}")
    assert len(trail.names) == MAX_EVENTS_PER_MINUTE  # the first one counted too
    now[0] += timedelta(minutes=1)
    audit.refused(AccessRefusal.AUTHENTICATION, "api-key 0123", "GET /api/x", authenticated=False)
    assert len(trail.names) == MAX_EVENTS_PER_MINUTE + 1  # a new minute, a new event
