"""Re-delivering dead letters: back to pending, a fresh round of attempts, same webhook-id.

Order makes a crash harmless: the row is reset, the message queued, and only then is
the dead letter removed, so a replay that stops half-way is finished by running it again
(receivers de-duplicate by ``webhook-id``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
from shared.platform.names import Container, Queue
from shared.platform.ports import EnvelopeSender

from .models import DeliveryState
from .ports import DeadLetters, DeliveryLog

__all__ = ["replay_dead_letters"]

log = logging.getLogger(__name__)


def replay_dead_letters(
    subscription_id: str,
    dead_letters: DeadLetters,
    deliveries: DeliveryLog,
    sender: EnvelopeSender,
    since: datetime | None = None,
) -> int:
    """Queue a subscription's dead letters again; how many were queued.

    Raises:
        StorageUnavailableError: storage failed part-way (run it again).
    """
    queued = 0
    for dead in dead_letters.list(subscription_id, since):
        row = deliveries.get(dead.subscription, dead.key) or dead.model_copy(update={"etag": None})
        if row.state is DeliveryState.DELIVERED:
            dead_letters.remove(dead)
            continue
        fresh = row.model_copy(update={"state": DeliveryState.PENDING, "sent": 0})
        if not deliveries.save(fresh):
            continue  # changed meanwhile: the next run picks it up
        sender.send(
            Queue.DELIVER,
            Envelope(
                id=uuid.uuid4(),
                correlation_id=dead.correlation_id,
                partner=dead.partner,
                kind=EnvelopeKind.DELIVERY_DUE,
                blob=BlobRef(container=Container.FHIR, name=dead.blob),
                created=datetime.now(UTC),
                subscription=dead.subscription,
            ),
        )
        dead_letters.remove(dead)
        queued += 1
    log.info(
        "replay: dead letters queued", extra={"subscription": subscription_id, "count": queued}
    )
    return queued
