"""Notifications: subscriptions, matching stored changes, signed webhook deliveries,
retries, the dead-letter store and replay."""

from __future__ import annotations

from .criteria import Criteria, parse_criteria
from .delivery import DeliveryStage
from .endpoints import parse_endpoint, resolve_endpoint
from .errors import (
    EndpointRefusedError,
    NotifyError,
    SubscriptionConflictError,
    SubscriptionForbiddenError,
    SubscriptionInvalidError,
    SubscriptionNotFoundError,
)
from .models import (
    Content,
    Delivery,
    DeliveryState,
    Event,
    Format,
    Subscription,
    SubscriptionStatus,
    Topic,
)
from .replay import replay_dead_letters
from .schedule import RetrySchedule
from .signing import new_secret, sign_delivery
from .stage import NotifyStage
from .subscriptions import SubscriptionChange, SubscriptionService

__all__ = [
    "Content",
    "Criteria",
    "Delivery",
    "DeliveryStage",
    "DeliveryState",
    "EndpointRefusedError",
    "Event",
    "Format",
    "NotifyError",
    "NotifyStage",
    "RetrySchedule",
    "Subscription",
    "SubscriptionChange",
    "SubscriptionConflictError",
    "SubscriptionForbiddenError",
    "SubscriptionInvalidError",
    "SubscriptionNotFoundError",
    "SubscriptionService",
    "SubscriptionStatus",
    "Topic",
    "new_secret",
    "parse_criteria",
    "parse_endpoint",
    "replay_dead_letters",
    "resolve_endpoint",
    "sign_delivery",
]
