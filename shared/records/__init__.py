"""The unified record: FHIR resources with their versions, on Azure Storage."""

from __future__ import annotations

from .errors import RecordError, ResourceConflictError
from .models import Change, CurrentVersion, WriteOutcome
from .versions import content_hash, plan_write

__all__ = [
    "Change",
    "CurrentVersion",
    "RecordError",
    "ResourceConflictError",
    "WriteOutcome",
    "content_hash",
    "plan_write",
]
