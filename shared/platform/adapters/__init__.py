"""Storage adapters shared by every stage: blobs by reference, envelopes onto queues."""

from __future__ import annotations

from .audit import BlobAuditLog
from .blobs import BlobPayloadStore
from .queues import QueueEnvelopeSender

__all__ = ["BlobAuditLog", "BlobPayloadStore", "QueueEnvelopeSender"]
