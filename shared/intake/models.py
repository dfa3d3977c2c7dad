"""What a partner submits over HTTP, and what we answer once it is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["Receipt", "Submission"]


@dataclass(frozen=True, slots=True)
class Submission:
    """One HTTP submission, as the function adapter read it."""

    body: bytes
    content_type: str | None
    content_encoding: str | None = None
    idempotency_key: str | None = None
    mapping: str | None = None
    traceparent: str | None = None

    def __repr__(self) -> str:  # the body may be PHI
        return (
            f"Submission(bytes={len(self.body)}, content_type={self.content_type!r}, "
            f"mapping={self.mapping!r})"
        )


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer to a stored submission."""

    ingestion_id: str
    received: datetime
    duplicate: bool  # the same submission was stored before: nothing new was done
    raw_blob: str
