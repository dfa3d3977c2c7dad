"""Consent I/O: the consent index on Azure Storage."""

from __future__ import annotations

from .table_index import TableConsentIndex

__all__ = ["TableConsentIndex"]
