"""Subscriptions, the events they receive, and what each delivery attempt did."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "Answer",
    "Attempt",
    "Content",
    "Delivery",
    "DeliveryState",
    "Event",
    "Format",
    "Subscription",
    "SubscriptionStatus",
    "Topic",
    "new_subscription_id",
    "secret_name",
]


class Event(StrEnum):
    """What happened to a resource (R5 SubscriptionTopic's create/update/delete)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class Topic(StrEnum):
    """Care transitions, read from an Encounter's versions (ADT A01/A03/A02 set them)."""

    ADMISSION = "admission"  # status became in-progress (A01)
    DISCHARGE = "discharge"  # status became finished (A03)
    TRANSFER = "transfer"  # in progress before and after, at another location (A02)


class Content(StrEnum):
    """How much of the resource a notification carries (R5 Subscription.content)."""

    ID_ONLY = "id-only"
    FULL_RESOURCE = "full-resource"


class Format(StrEnum):
    """The notification body."""

    FHIR = "fhir-r4-backport"  # history Bundle, status Parameters first
    CLOUDEVENTS = "cloudevents"  # a CloudEvents 1.0 structured JSON event


class SubscriptionStatus(StrEnum):
    """R4 Subscription.status, as we use it."""

    ACTIVE = "active"
    ERROR = "error"  # deliveries ran out of attempts; still delivering, see ``error``
    OFF = "off"  # paused by its owner, or the endpoint answered 410 Gone


class DeliveryState(StrEnum):
    """Where one event's delivery to one subscription is."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # in the dead-letter store, waiting for a replay
    SKIPPED = "skipped"  # the subscription was off or gone when it was due


def new_subscription_id() -> str:
    """A random id: 32 lowercase hex digits (fits Key Vault names and table keys)."""
    return uuid.uuid4().hex


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid"
    )


class Subscription(_Model):
    """One subscriber's filter, endpoint and delivery state."""

    id: str = Field(pattern=r"^[a-z0-9]{32}$")
    owner: str = Field(min_length=1, max_length=64)  # the partner that receives
    criteria: str = Field(min_length=1, max_length=1024)  # "Type?param=value&..."
    events: frozenset[Event] = frozenset({Event.CREATE, Event.UPDATE})
    topics: frozenset[Topic] = frozenset()
    endpoint: str = Field(min_length=1, max_length=2048)
    content: Content = Content.ID_ONLY
    format: Format = Format.FHIR
    purpose: str = Field(default="TREAT", pattern=r"^[A-Z][A-Z0-9]{1,31}$")
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE
    error: str | None = Field(default=None, max_length=500)
    base_url: str = Field(min_length=1, max_length=512)  # our FHIR base, for fullUrls
    created: AwareDatetime
    updated: AwareDatetime
    secret_generation: int = Field(default=1, ge=1)
    previous_generation: int | None = None  # signs too, until ``previous_until``
    previous_until: AwareDatetime | None = None

    def secret_names(self, now: datetime) -> list[str]:
        """Key Vault names of the secrets that sign now: current first."""
        names = [secret_name(self.id, self.secret_generation)]
        if self.previous_generation and self.previous_until and now < self.previous_until:
            names.append(secret_name(self.id, self.previous_generation))
        return names

    def public(self) -> dict[str, object]:
        """The API's view (camelCase, no internal counters)."""
        return self.model_dump(
            mode="json", by_alias=True, exclude={"secret_generation", "previous_generation"}
        )


def secret_name(subscription_id: str, generation: int) -> str:
    """The Key Vault secret name of one generation of a subscription's signing secret."""
    return f"webhook-{subscription_id}-{generation}"


class Attempt(_Model):
    """One delivery attempt, as kept with the delivery and in the dead-letter store."""

    number: int = Field(ge=1)
    at: AwareDatetime
    status: int | None = None  # the HTTP status, when there was an answer
    error: str | None = Field(default=None, max_length=300)  # what failed, without bodies
    duration_ms: int = Field(default=0, ge=0)


class Delivery(_Model):
    """One event's delivery to one subscription: its number, state and attempts."""

    subscription: str
    key: str  # "Type|id|version": what the event is about, unique per subscription
    number: int = Field(default=0, ge=0)  # the subscription's event number (0: not claimed)
    event: Event
    topic: Topic | None = None
    state: DeliveryState = DeliveryState.PENDING
    sent: int = Field(default=0, ge=0)  # attempts in the current round (a replay starts one)
    attempts: tuple[Attempt, ...] = ()  # every attempt, the most recent last (bounded)
    correlation_id: str
    partner: str
    blob: str  # the version blob in ``fhir``
    created: AwareDatetime
    etag: str | None = Field(default=None, exclude=True)

    @property
    def message_id(self) -> str:
        """The ``webhook-id``: the same for every attempt and replay of this delivery."""
        return f"msg_{self.subscription}_{self.number}"


@dataclass(frozen=True, slots=True)
class Answer:
    """What one POST got: a status, or why there was none."""

    status: int | None
    retry_after: float | None = None  # seconds, from the Retry-After header
    error: str | None = None  # no answer: refused, time-out, connection failure
    duration_ms: int = 0
