"""The pipeline's health as an operator acts on it: poison queues with their depth and
first messages, dead-lettered deliveries per subscription, and the replays that send
them back (the operations ``intake replay`` and ``POST /subscriptions/{id}/$replay``
run), each audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from shared.platform.envelope import Envelope
from shared.platform.errors import EnvelopeError
from shared.platform.names import Queue, poison_queue
from shared.platform.ports import AuditLog
from shared.security.audit import AdminAction, admin_audit_event

from .errors import ActionRefusedError, ConsoleForbiddenError
from .models import DeadLetterGroup, PoisonMessage, PoisonQueue, Viewer

__all__ = ["DEAD_COUNTED", "PEEKED", "REPLAYED", "PipelineView", "PoisonPeek"]

PEEKED = 32  # messages of each poison queue the page lists (the most a peek returns)
REPLAYED = 500  # messages one press of a replay button moves (the request must end)
DEAD_COUNTED = 1000  # dead letters counted per subscription (the page says "1000 or more")


class PoisonPeek(Protocol):
    """Port: a poison queue's first messages, left in place (``StorageConsoleReader``)."""

    def peek(self, queue: Queue, limit: int) -> list[tuple[bytes, Any, int]]:
        """(body, inserted, dequeue count) of each."""


class PipelineView:
    """Poison queues and dead letters, and replaying them (operators only)."""

    def __init__(
        self,
        depths: Callable[[], dict[str, int]],
        peek: PoisonPeek,
        replay_queue: Callable[[Queue, int], int],
        dead_letters: Callable[[], list[DeadLetterGroup]],
        replay_subscription: Callable[[str], int | None],
        audit: AuditLog,
        clock: Callable[[], datetime],
    ) -> None:
        self._depths = depths
        self._peek = peek
        self._replay_queue = replay_queue
        self._dead_letters = dead_letters
        self._replay_subscription = replay_subscription
        self._audit = audit
        self._clock = clock

    @staticmethod
    def _operator(viewer: Viewer) -> None:
        if not viewer.operator:
            raise ConsoleForbiddenError("the pipeline is an operator's view")

    def poison(self, viewer: Viewer) -> list[PoisonQueue]:
        """Every poison queue with its depth, and the first messages of those not empty.

        Raises:
            ConsoleForbiddenError: not an operator.
            StorageUnavailableError: storage failed.
        """
        self._operator(viewer)
        depths = self._depths()
        queues = []
        for queue in Queue:
            depth = depths.get(poison_queue(queue), 0)
            peeked = self._peek.peek(queue, PEEKED) if depth else []
            queues.append(PoisonQueue(queue.value, depth, [_message(*m) for m in peeked]))
        return queues

    def dead_letters(self, viewer: Viewer) -> list[DeadLetterGroup]:
        """Subscriptions with dead-lettered deliveries, and how many each.

        Raises:
            ConsoleForbiddenError: not an operator.
            StorageUnavailableError: storage failed.
        """
        self._operator(viewer)
        return [g for g in self._dead_letters() if g.count]

    def replay_queue(self, viewer: Viewer, queue: Queue) -> tuple[int, bool]:
        """Send up to ``REPLAYED`` of a poison queue's messages back to their stage: how
        many moved, and whether more may wait. The replay is audited before it starts (a
        request that stops half-way still left its trace) and again with its count.

        Raises:
            ConsoleForbiddenError: not an operator.
            StorageUnavailableError: storage failed part-way (nothing is lost: a message
                is sent before it is deleted).
        """
        self._operator(viewer)
        target = f"urn:fhir-intake:queue:{queue}"
        self._audited(AdminAction.QUEUE_REPLAY, viewer, target, "started")
        moved = self._replay_queue(queue, REPLAYED)
        self._audited(AdminAction.QUEUE_REPLAY, viewer, target, str(moved))
        return moved, moved >= REPLAYED

    def replay_subscription(self, viewer: Viewer, subscription: str) -> int:
        """Queue a subscription's dead letters again; how many were queued.

        Raises:
            ConsoleForbiddenError: not an operator.
            ActionRefusedError: no such subscription, or it is off.
            StorageUnavailableError: storage failed part-way (run it again).
        """
        self._operator(viewer)
        target = f"Subscription/{subscription}"
        self._audited(AdminAction.SUBSCRIPTION_REPLAY, viewer, target, "started")
        queued = self._replay_subscription(subscription)
        if queued is None:
            raise ActionRefusedError("the subscription is gone or off: turn it on first")
        self._audited(AdminAction.SUBSCRIPTION_REPLAY, viewer, target, str(queued))
        return queued

    def _audited(self, action: AdminAction, viewer: Viewer, target: str, queued: str) -> None:
        self._audit.write(
            admin_audit_event(action, viewer.partner, target, self._clock(), {"queued": queued})
        )


def _message(body: bytes, inserted: Any, dequeued: int) -> PoisonMessage:
    """What a poison message's envelope says (ids only); a body that is not one (a drop
    event, an intake request) is shown by its kind alone."""
    try:
        envelope = Envelope.from_bytes(body)
    except EnvelopeError:
        return PoisonMessage("", "", "not an envelope", _when(inserted), dequeued)
    return PoisonMessage(
        envelope.partner, envelope.correlation_id, envelope.kind.value, _when(inserted), dequeued
    )


def _when(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None
