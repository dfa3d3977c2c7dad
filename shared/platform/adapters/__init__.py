"""Storage adapters shared by every stage: blobs by reference, envelopes onto queues, secrets."""

from __future__ import annotations

from .audit import BlobAuditLog
from .blobs import BlobPayloadStore
from .queues import QueueEnvelopeSender
from .secrets import FileSecretStore, KeyVaultSecretStore

__all__ = [
    "BlobAuditLog",
    "BlobPayloadStore",
    "FileSecretStore",
    "KeyVaultSecretStore",
    "QueueEnvelopeSender",
]
