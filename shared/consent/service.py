"""Consent decisions on request: look the patient's consents up, decide, audit.

The HTTP operations use it now; reads and notifications (``access``, ``disclose``) will
call the same ``evaluate``. The clock is injected so a decision's time is the server's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from shared.platform.ports import AuditLog

from .audit import consent_audit_event
from .engine import decide_consent
from .index import ConsentSource
from .models import (
    Action,
    Actor,
    Code,
    ConsentDecision,
    ConsentRequest,
    DataItem,
    Effect,
    Policy,
)

__all__ = ["ConsentService"]


class ConsentService:
    """Decides for callers that name a patient by identifiers or reference."""

    def __init__(
        self,
        consents: ConsentSource,
        audit: AuditLog,
        policy: Policy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._consents = consents
        self._audit = audit
        self._policy = policy
        self._clock = clock

    @property
    def policy(self) -> Policy:
        """The deployment's default policy."""
        return self._policy

    def evaluate(
        self,
        patient_keys: Iterable[str],
        action: Action,
        purpose: Code | None,
        actor: Actor | None,
        data: DataItem | None = None,
        resource: str | None = None,
        observer: str = "fhir-intake",
        requester: Actor | None = None,
        access: str | None = None,
        patient: str | None = None,
    ) -> ConsentDecision:
        """Decide one request now, and write its AuditEvent (``requester``: who asked;
        ``access``: how a reader reached the person, for the record).

        Raises:
            ConsentUnavailableError: the consent index did not answer (callers deny).
            StorageUnavailableError: the AuditEvent could not be written.
        """
        keys = set(patient_keys)
        request = ConsentRequest(
            action=action, at=self._clock(), purpose=purpose, actor=actor, data=data
        )
        decision = decide_consent(self._consents.find(keys), request, self._policy)
        self._record(decision, request, keys, resource, observer, requester, access, patient)
        return decision

    def refuse(
        self,
        patient: str,
        action: Action,
        purpose: Code | None,
        actor: Actor | None,
        reason: str,
        resource: str | None = None,
        observer: str = "fhir-intake",
    ) -> ConsentDecision:
        """Record a request refused before consent was asked (the reader has no
        relationship with the person): a deny, audited like any decision.

        Raises:
            StorageUnavailableError: the AuditEvent could not be written.
        """
        request = ConsentRequest(action=action, at=self._clock(), purpose=purpose, actor=actor)
        decision = ConsentDecision(Effect.DENY, reasons=(reason,))
        self._record(decision, request, {patient}, resource, observer, None, "none", patient)
        return decision

    def _record(
        self,
        decision: ConsentDecision,
        request: ConsentRequest,
        keys: set[str],
        resource: str | None,
        observer: str,
        requester: Actor | None,
        access: str | None,
        patient: str | None = None,
    ) -> None:
        self._audit.write(
            consent_audit_event(
                work_id=str(uuid.uuid4()),
                number=0,
                decision=decision,
                action=request.action.value,
                purpose=request.purpose,
                actor=request.actor,
                policy=self._policy,
                recorded=request.at,
                patient=patient
                or next((k for k in sorted(keys) if k.startswith("Patient/")), None),
                resources=[resource] if resource else [],
                observer=observer,
                requester=requester,
                access=access,
            )
        )
