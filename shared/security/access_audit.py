"""Refused requests leave a trace: every 401 and 403 is an AuditEvent and a log line.

They name what was presented (a key's id, a token's principal, or the partner) and the
route, never a secret or a query. Writing the trace must not change the answer: when
storage is down the refusal is still a refusal (the log line keeps it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from shared.platform.errors import StorageUnavailableError
from shared.platform.ports import AuditLog

from .audit import AccessRefusal, access_refused_audit_event

__all__ = ["AccessAudit"]

log = logging.getLogger(__name__)


class AccessAudit:
    """Records refused requests in the audit trail."""

    def __init__(
        self, audit: AuditLog, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._audit = audit
        self._clock = clock

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
        event = access_refused_audit_event(
            refusal, caller, route, self._clock(), details, authenticated=authenticated
        )
        try:
            self._audit.write(event)
        except StorageUnavailableError:
            log.warning(
                "access refused: not audited, storage is unavailable", extra={"stage": "auth"}
            )
