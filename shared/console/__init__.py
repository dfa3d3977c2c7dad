"""The operator console: find an ingestion, see its journey, act on the pipeline.

Server-rendered pages (``functions/console.py``) over services that read the journey
rows, the record's indexes and the queues; sessions kept server-side; every view of
patient data and every replay audited.
"""

from __future__ import annotations

from .detail import IngestionDetail, IngestionView
from .errors import (
    ActionRefusedError,
    ConsoleError,
    ConsoleForbiddenError,
    FormExpiredError,
    FormUnreadableError,
    SignInRequiredError,
)
from .figures import Figures
from .models import IngestionFilter, IngestionStatus, Session, Viewer
from .pipeline import PipelineView
from .search import IngestionSearch, SearchResult
from .sessions import ConsoleSessions, check_form

__all__ = [
    "ActionRefusedError",
    "ConsoleError",
    "ConsoleForbiddenError",
    "ConsoleSessions",
    "Figures",
    "FormExpiredError",
    "FormUnreadableError",
    "IngestionDetail",
    "IngestionFilter",
    "IngestionSearch",
    "IngestionStatus",
    "IngestionView",
    "PipelineView",
    "SearchResult",
    "Session",
    "SignInRequiredError",
    "Viewer",
    "check_form",
]
