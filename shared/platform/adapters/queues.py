"""Envelopes onto stage queues (base64, as the queue trigger reads them)."""

from __future__ import annotations

from azure.core.exceptions import AzureError

from ..envelope import Envelope
from ..errors import StorageUnavailableError
from ..names import Queue
from ..storage import StorageClients

__all__ = ["QueueEnvelopeSender"]


class QueueEnvelopeSender:
    """Sends envelopes to the next stage."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients

    def send(self, queue: Queue, envelope: Envelope, delay: int = 0) -> None:
        """Enqueue one envelope, visible after ``delay`` seconds (at most 7 days).

        Raises:
            StorageUnavailableError: storage failed (retryable).
        """
        try:
            self._clients.queue_client(queue).send_message(
                envelope.to_bytes(), visibility_timeout=max(0, min(delay, 7 * 24 * 3600)) or None
            )
        except AzureError as exc:
            raise StorageUnavailableError(f"enqueueing failed: {type(exc).__name__}") from exc
