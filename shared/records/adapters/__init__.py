"""Record store I/O: resources and their history on Azure Storage."""

from __future__ import annotations

from .blob_store import BlobResourceStore

__all__ = ["BlobResourceStore"]
