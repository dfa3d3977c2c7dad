"""The ports notifications talk to (adapters in ``adapters/``; fakes in the unit tests)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from .models import Answer, Delivery, Subscription

__all__ = ["DeadLetters", "DeliveryLog", "SubscriptionStore", "WebhookTransport"]


class SubscriptionStore(Protocol):
    """Subscriptions by id (``TableSubscriptionStore``)."""

    def add(self, subscription: Subscription) -> None:
        """Store a new subscription."""

    def get(self, subscription_id: str) -> Subscription | None:
        """One subscription, or None."""

    def list(self, owner: str | None = None) -> list[Subscription]:
        """Every subscription, or one owner's."""

    def update(
        self, subscription_id: str, change: Callable[[Subscription], Subscription | None]
    ) -> Subscription | None:
        """Read, change and write back under the row's ETag (retried on a race); a change
        that returns None deletes the row. None when there is no such subscription."""


class DeliveryLog(Protocol):
    """One row per (subscription, event) (``TableDeliveryLog``)."""

    def get(self, subscription_id: str, key: str) -> Delivery | None:
        """The delivery of one event, or None."""

    def claim(self, delivery: Delivery) -> Delivery:
        """Number a new delivery with its subscription's next event number and store it,
        as one step; if the key exists already, the delivery stored there."""

    def count(self, subscription_id: str) -> int:
        """How many events the subscription has had (its last event number)."""

    def save(self, delivery: Delivery) -> bool:
        """Write back a delivery read before; False when it changed since (a race lost)."""


class DeadLetters(Protocol):
    """Deliveries that ran out of attempts (``BlobDeadLetters``)."""

    def put(self, delivery: Delivery, at: datetime) -> str:
        """Keep a delivery with its attempts; where it went."""

    def list(self, subscription_id: str, since: datetime | None = None) -> list[Delivery]:
        """A subscription's dead letters (dead-lettered at or after ``since``)."""

    def remove(self, delivery: Delivery) -> None:
        """Forget one (it was replayed)."""


class WebhookTransport(Protocol):
    """One POST to an endpoint (``HttpWebhookTransport``)."""

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST once; what came back, never an exception for the endpoint's doing."""
