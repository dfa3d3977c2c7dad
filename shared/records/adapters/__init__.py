"""Record store I/O: resources and their history, and the person index, on Azure Storage."""

from __future__ import annotations

from .blob_store import BlobResourceStore
from .person_index import TablePersonIndex

__all__ = ["BlobResourceStore", "TablePersonIndex"]
