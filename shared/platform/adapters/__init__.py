"""Storage adapters shared by every stage: blobs by reference, envelopes onto queues."""

from __future__ import annotations

from .blobs import BlobPayloadStore
from .queues import QueueEnvelopeSender

__all__ = ["BlobPayloadStore", "QueueEnvelopeSender"]
