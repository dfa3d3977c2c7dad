"""The ports every stage talks to storage through (adapters in ``adapters/``), named once
so stages and their in-memory test fakes agree on one shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .envelope import BlobRef, Envelope
from .names import Container, Queue

__all__ = ["AuditLog", "EnvelopeSender", "PayloadStore"]


class PayloadStore(Protocol):
    """Payload blobs by reference (``BlobPayloadStore``)."""

    def read(self, ref: BlobRef) -> tuple[bytes, dict[str, str], str | None]:
        """Bytes, metadata and content type of a blob."""

    def write(
        self,
        container: Container,
        name: str,
        data: bytes,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> BlobRef:
        """Write (or overwrite) a blob."""


class EnvelopeSender(Protocol):
    """Envelopes onto stage queues (``QueueEnvelopeSender``)."""

    def send(self, queue: Queue, envelope: Envelope, delay: int = 0) -> None:
        """Enqueue one envelope, visible after ``delay`` seconds."""


class AuditLog(Protocol):
    """Append-only AuditEvents (``BlobAuditLog``)."""

    def write(self, event: dict[str, Any]) -> str:
        """Store one AuditEvent; where it went."""

    def write_batch(self, events: Sequence[dict[str, Any]], work_id: str) -> str | None:
        """Store the AuditEvents of one unit of work together; where they went."""
