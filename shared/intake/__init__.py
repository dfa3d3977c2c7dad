"""Intake: partner submissions and the record of what happened to each."""

from __future__ import annotations

from .status import IngestionLog, StageReport, TableIngestionLog

__all__ = ["IngestionLog", "StageReport", "TableIngestionLog"]
