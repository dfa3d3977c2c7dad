"""Refused requests leave a trace: every 401 and 403 is an AuditEvent and a log line.

They name what was presented (a key's id, a token's principal, or the partner) and the
route, never a secret or a query. Writing the trace must not change the answer: when
storage is down the refusal is still a refusal (the log line keeps it).

A 401 needs only the function key, and the audit container is immutable for years, so
refusals cannot be allowed to fill it: the same caller refused on the same route within
a minute is one AuditEvent, and an instance writes at most ``MAX_EVENTS_PER_MINUTE``
refusal events a minute (past that only the log line, which says so).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from shared.platform.errors import StorageUnavailableError
from shared.platform.ports import AuditLog

from .audit import AccessRefusal, access_refused_audit_event

__all__ = ["MAX_EVENTS_PER_MINUTE", "AccessAudit"]

MAX_EVENTS_PER_MINUTE = 120

log = logging.getLogger(__name__)


class AccessAudit:
    """Records refused requests in the audit trail."""

    def __init__(
        self, audit: AuditLog, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._audit = audit
        self._clock = clock
        self._minute = ""
        self._written: set[tuple[str, str, str]] = set()  # refusals audited in ``_minute``

    def refused(
        self,
        refusal: AccessRefusal,
        caller: str,
        route: str,
        details: Mapping[str, str] | None = None,
        *,
        authenticated: bool = True,
    ) -> None:
        """Record one refusal (``caller``: a partner id, or what was presented)."""
        log.warning(
            "access refused",
            extra={"stage": "auth", "outcome": refusal.value, "caller": caller, "route": route},
        )
        now = self._clock()
        minute = now.strftime("%Y-%m-%dT%H:%M")
        if minute != self._minute:
            self._minute, self._written = minute, set()
        key = (refusal.value, caller, route)
        if key in self._written:
            return  # this minute's event says it already (the trail would keep the first)
        if len(self._written) >= MAX_EVENTS_PER_MINUTE:
            log.warning(
                "access refused: not audited, too many this minute", extra={"stage": "auth"}
            )
            return
        self._written.add(key)
        event = access_refused_audit_event(
            refusal, caller, route, now, details, authenticated=authenticated
        )
        try:
            self._audit.write(event)
        except StorageUnavailableError:
            log.warning(
                "access refused: not audited, storage is unavailable", extra={"stage": "auth"}
            )
