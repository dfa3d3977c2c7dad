"""Errors of the record store.

IntakeError
└── RecordError
    └── ResourceConflictError   writers kept racing for one resource (retryable)
"""

from __future__ import annotations

from shared.platform.errors import IntakeError

__all__ = ["RecordError", "ResourceConflictError"]


class RecordError(IntakeError):
    """Root of record store errors."""


class ResourceConflictError(RecordError):
    """Concurrent writes to one resource did not settle within the attempts allowed."""

    retryable = True
