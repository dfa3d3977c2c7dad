"""The deliver stage: one attempt at one notification, then success, a scheduled retry,
the dead-letter store, or a disabled subscription.

A delivery row counts the attempts of its current round (``sent``); a message whose
attempt number does not match is stale (a duplicate) and is dropped, so there is only
ever one chain of retries. The next attempt is queued before the row is saved: a crash
in between leaves a stale message and the queue's retry of this one, never a gap.
Failures of our own storage raise (queue retry); what the endpoint does never raises.
Every attempt first asks whether the owner may be told at all: its read scope and the
patient's consent to ``disclose`` (audited); if not, the event is skipped, id-only
payloads included, since even an id says that a matching change happened.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from shared.consent.actors import partner_actor
from shared.consent.models import Action, Code
from shared.consent.vocabulary import ACT_REASON
from shared.platform.envelope import Envelope, EnvelopeKind
from shared.platform.names import Queue
from shared.platform.ports import EnvelopeSender
from shared.platform.secrets import SecretNotFoundError, SecretStore
from shared.platform.telemetry import count_delivery, note_outcome
from shared.records.reads import Reader
from shared.security.models import Partner

from .models import (
    Answer,
    Attempt,
    Content,
    Delivery,
    DeliveryState,
    Event,
    Subscription,
    SubscriptionStatus,
)
from .payloads import Notification, build_notification
from .ports import DeadLetters, DeliveryLog, SubscriptionStore, WebhookTransport
from .schedule import RetrySchedule
from .signing import sign_delivery
from .stage import parse_version_blob

__all__ = ["DeliveryStage"]

log = logging.getLogger(__name__)
_KEPT_ATTEMPTS = 20


class _Record(Protocol):
    def read(
        self, reader: Reader, resource_type: str, resource_id: str, version: int | None = None
    ) -> dict[str, object] | None: ...


class _Partners(Protocol):
    def get(self, partner_id: str) -> Partner | None: ...


class DeliveryStage:
    """Attempts deliveries and keeps their outcome."""

    def __init__(
        self,
        subscriptions: SubscriptionStore,
        deliveries: DeliveryLog,
        dead_letters: DeadLetters,
        record: _Record,
        partners: _Partners,
        secrets: SecretStore,
        transport: WebhookTransport,
        sender: EnvelopeSender,
        schedule: RetrySchedule,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._subscriptions = subscriptions
        self._deliveries = deliveries
        self._dead_letters = dead_letters
        self._record = record
        self._partners = partners
        self._secrets = secrets
        self._transport = transport
        self._sender = sender
        self._schedule = schedule
        self._clock = clock

    def handle(self, envelope: Envelope) -> DeliveryState | None:
        """Attempt the delivery a message names; its state afterwards (None: dropped).

        Raises:
            StorageUnavailableError, SecretsUnavailableError, ConsentUnavailableError:
                retry through the queue.
        """
        where = parse_version_blob(envelope.blob.name) if envelope.blob else None
        if envelope.kind is not EnvelopeKind.DELIVERY_DUE or not envelope.subscription or not where:
            log.warning("deliver: not a delivery envelope", extra={"stage": "deliver"})
            note_outcome("rejected")
            return None
        key = "|".join(str(part) for part in where)
        delivery = self._deliveries.get(envelope.subscription, key)
        if (
            delivery is None
            or delivery.state is not DeliveryState.PENDING
            or delivery.sent != envelope.attempt
        ):
            log.info("deliver: stale message dropped", extra={"stage": "deliver"})
            note_outcome("stale")
            return None
        sub = self._subscriptions.get(delivery.subscription)
        if sub is None or sub.status is SubscriptionStatus.OFF:
            self._deliveries.save(delivery.model_copy(update={"state": DeliveryState.SKIPPED}))
            count_delivery(DeliveryState.SKIPPED.value)
            return DeliveryState.SKIPPED
        visible, resource = self._disclosed(sub, delivery, where)
        if not visible:  # the owner may not read it (now): it hears nothing of it, not even an id
            self._deliveries.save(delivery.model_copy(update={"state": DeliveryState.SKIPPED}))
            log.info("deliver: withheld", extra={"stage": "deliver", "subscription": sub.id})
            count_delivery(DeliveryState.SKIPPED.value)
            return DeliveryState.SKIPPED
        now = self._clock()
        answer = self._post(sub, delivery, where, now, resource)
        attempt = Attempt(
            number=len(delivery.attempts) + 1,
            at=now,
            status=answer.status,
            error=answer.error,
            duration_ms=answer.duration_ms,
        )
        attempts = (*delivery.attempts, attempt)[-_KEPT_ATTEMPTS:]
        tried = delivery.model_copy(update={"attempts": attempts, "sent": delivery.sent + 1})
        state = self._settle(sub, tried, answer, envelope, now)
        count_delivery(state.value)
        log.info(  # the outcome in the text too: Azure's traces carry only the message
            "deliver: %s",
            state.value,
            extra={
                "stage": "deliver",
                "correlation_id": envelope.correlation_id,
                "subscription": sub.id,
                "event_number": delivery.number,
                "attempt": tried.sent,
                "http_status": answer.status,
                "outcome": state.value,
                "duration_ms": answer.duration_ms,
            },
        )
        return state

    def _disclosed(
        self, sub: Subscription, delivery: Delivery, where: tuple[str, str, int]
    ) -> tuple[bool, dict[str, object] | None]:
        """Whether the owner may be told of this version (its read scope and the patient's
        consent to ``disclose``, decided now and audited), and the resource for a
        full-resource payload. A deletion is judged by the version it deleted."""
        resource_type, resource_id, version = where
        if delivery.event is Event.DELETE:
            if version < 2:
                return True, None
            gone = self._record.read(self._reader(sub), resource_type, resource_id, version - 1)
            return gone is not None, None
        found = self._record.read(self._reader(sub), resource_type, resource_id, version)
        return found is not None, found if sub.content is Content.FULL_RESOURCE else None

    def _post(
        self,
        sub: Subscription,
        delivery: Delivery,
        where: tuple[str, str, int],
        now: datetime,
        resource: dict[str, object] | None,
    ) -> Answer:
        """Build, sign and send one attempt; a missing current secret is a failed attempt."""
        try:
            secrets = [self._secrets.get(sub.secret_names(now)[0])]
        except SecretNotFoundError:
            return Answer(None, error="the subscription's signing secret is missing")
        for older in sub.secret_names(now)[1:]:
            try:
                secrets.append(self._secrets.get(older))
            except SecretNotFoundError:
                continue  # the overlap ends early: sign with the current secret only
        resource_type, resource_id, version = where
        note = Notification(
            subscription=sub,
            message_id=delivery.message_id,
            number=delivery.number,
            event=delivery.event,
            topic=delivery.topic,
            resource_type=resource_type,
            resource_id=resource_id,
            version=version,
            resource=resource,
            events_so_far=self._deliveries.count(sub.id),
        )
        body, content_type = build_notification(note, now)
        headers = sign_delivery(secrets, delivery.message_id, now, body)
        headers["Content-Type"] = content_type
        return self._transport.post(sub.endpoint, body, headers)

    def _reader(self, sub: Subscription) -> Reader:
        """The subscriber's organization, receiving data for its purpose (``disclose``),
        within its read scope."""
        owner = self._partners.get(sub.owner)
        return Reader(
            partner_actor(sub.owner, owner),
            Code(ACT_REASON, sub.purpose),
            sub.owner,
            Action.DISCLOSE,
            caller=owner,
        )

    def _settle(
        self,
        sub: Subscription,
        tried: Delivery,
        answer: Answer,
        envelope: Envelope,
        now: datetime,
    ) -> DeliveryState:
        status = answer.status
        if status is not None and 200 <= status < 300:
            self._deliveries.save(tried.model_copy(update={"state": DeliveryState.DELIVERED}))
            if sub.status is SubscriptionStatus.ERROR:
                self._set_status(sub.id, SubscriptionStatus.ACTIVE, None, only_if_error=True)
            return DeliveryState.DELIVERED
        if status == 410:
            self._dead_letter(tried, now)
            self._set_status(sub.id, SubscriptionStatus.OFF, "the endpoint answered 410 Gone")
            return DeliveryState.DEAD
        wait = self._schedule.next_delay(tried.sent, answer.retry_after)
        if wait is None:
            self._dead_letter(tried, now)
            last = f"HTTP {status}" if status is not None else (answer.error or "no answer")
            self._set_status(
                sub.id,
                SubscriptionStatus.ERROR,
                f"event {tried.number} dead-lettered after {tried.sent} attempts (last: {last})",
            )
            return DeliveryState.DEAD
        retry = envelope.model_copy(
            update={"id": uuid.uuid4(), "attempt": tried.sent, "created": now}
        )
        self._sender.send(Queue.DELIVER, retry, delay=wait)
        self._deliveries.save(tried)
        return DeliveryState.PENDING

    def _dead_letter(self, tried: Delivery, now: datetime) -> None:
        dead = tried.model_copy(update={"state": DeliveryState.DEAD})
        self._dead_letters.put(dead, now)
        self._deliveries.save(dead)

    def _set_status(
        self,
        subscription_id: str,
        status: SubscriptionStatus,
        error: str | None,
        only_if_error: bool = False,
    ) -> None:
        def change(sub: Subscription) -> Subscription:
            if only_if_error and sub.status is not SubscriptionStatus.ERROR:
                return sub
            return sub.model_copy(
                update={"status": status, "error": error, "updated": self._clock()}
            )

        self._subscriptions.update(subscription_id, change)
