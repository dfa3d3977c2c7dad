"""What the console shows and who looks at it: ids, times, counts and states only,
except where a view is named as showing patient data (``PayloadView``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.security.models import Role

__all__ = [
    "DeadLetterGroup",
    "DeliveryView",
    "IngestionFilter",
    "IngestionStatus",
    "IngestionSummary",
    "PayloadView",
    "PoisonMessage",
    "PoisonQueue",
    "Session",
    "StageFigures",
    "Viewer",
]


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: a partner (its own ingestions) or an operator (admin: all)."""

    partner: str
    roles: frozenset[Role]

    @property
    def operator(self) -> bool:
        """Admin: every partner's ingestions, the pipeline and its replays."""
        return Role.ADMIN in self.roles

    @property
    def sees_payloads(self) -> bool:
        """Only operators open raw payloads and quarantine records: an ingest key is a
        sending system's credential, and the console must not turn it into a way to read
        back everything it ever sent (the trust model gives ingest no reads)."""
        return self.operator

    def may_see(self, partner: str) -> bool:
        """Whether ``partner``'s ingestions are visible to this viewer."""
        return self.operator or partner == self.partner


@dataclass(frozen=True, slots=True)
class Session:
    """A console sign-in, kept server-side: the cookie holds only a random token."""

    partner: str
    roles: frozenset[Role]
    key: str  # the API key id it signed in with ("" for an Entra token)
    csrf: str  # the token every state-changing form carries
    created: datetime
    expires: datetime  # absolute end of the session
    seen: datetime  # last use: the idle limit counts from here

    @property
    def viewer(self) -> Viewer:
        """The viewer this session signs in."""
        return Viewer(self.partner, self.roles)


class IngestionStatus(StrEnum):
    """An ingestion's state as a whole, from its stages' columns."""

    IN_PROGRESS = "in-progress"  # not every stage has run yet
    FAILED = "failed"  # a stage raised: retried, or waiting in a poison queue
    REJECTED = "rejected"  # normalization accepted nothing
    DENIED = "denied"  # consent held everything back
    PARTIAL = "partial"  # stored, with records or resources left out
    STORED = "stored"  # everything stored


@dataclass(frozen=True, slots=True)
class IngestionFilter:
    """A search of ingestions; every field narrows it."""

    partner: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: IngestionStatus | None = None
    message_id: str | None = None  # MSH-10, or another source message id
    patient: str | None = None  # system|value, looked up by its hash


@dataclass(frozen=True, slots=True)
class IngestionSummary:
    """One line of a search's results."""

    partner: str
    id: str
    received: datetime | None
    status: IngestionStatus
    channel: str
    message_id: str
    message_type: str
    resources: int | None


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """A notification sent for one stored version, with its attempts."""

    subscription: str
    resource: str  # Type/id/_history/version
    state: str
    attempts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PayloadView:
    """Patient data: what the partner sent and what was held back. Shown only to a
    viewer who ``sees_payloads``, and every showing is audited."""

    raw: str  # as text (UTF-8, undecodable bytes replaced), cut at the view's limit
    raw_bytes: int
    truncated: bool
    quarantine: list[tuple[str, str]]  # (blob name, its text)


@dataclass(frozen=True, slots=True)
class PoisonMessage:
    """A message waiting in a poison queue, as its envelope names it (ids only)."""

    partner: str
    correlation_id: str
    kind: str
    inserted: datetime | None
    dequeued: int


@dataclass(frozen=True, slots=True)
class PoisonQueue:
    """One poison queue: its depth and the first messages in it."""

    queue: str  # the logical queue the messages go back to
    depth: int
    messages: list[PoisonMessage]


@dataclass(frozen=True, slots=True)
class DeadLetterGroup:
    """A subscription's dead-lettered deliveries."""

    subscription: str
    owner: str
    count: int


@dataclass(frozen=True, slots=True)
class StageFigures:
    """Ingestions of one partner in a window, by outcome of each stage."""

    partner: str
    received: int = 0
    stored: int = 0
    partial: int = 0
    rejected: int = 0
    denied: int = 0
    failed: int = 0
    in_progress: int = 0
    resources: int = 0
