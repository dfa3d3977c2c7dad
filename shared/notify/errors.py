"""Errors of notifications.

IntakeError
└── NotifyError
    ├── SubscriptionInvalidError    a subscription request we cannot accept (permanent, 400)
    ├── SubscriptionNotFoundError   no such subscription for this caller (permanent, 404)
    ├── SubscriptionForbiddenError  beyond what the owner may read (permanent, 403)
    ├── SubscriptionConflictError   the subscription changed while we wrote it (retryable)
    └── EndpointRefusedError        an endpoint we will not call: scheme, address (permanent)
"""

from __future__ import annotations

from shared.platform.errors import IntakeError

__all__ = [
    "EndpointRefusedError",
    "NotifyError",
    "SubscriptionConflictError",
    "SubscriptionForbiddenError",
    "SubscriptionInvalidError",
    "SubscriptionNotFoundError",
]


class NotifyError(IntakeError):
    """Root of the notification errors."""


class SubscriptionInvalidError(NotifyError):
    """A subscription request that cannot be accepted; the message says which field."""


class SubscriptionNotFoundError(NotifyError):
    """No subscription with this id that the caller may see."""


class SubscriptionForbiddenError(NotifyError):
    """A subscription beyond the owner's read scope or registered purposes (trust model)."""


class SubscriptionConflictError(NotifyError):
    """The subscription row kept changing under a read-modify-write."""

    retryable = True


class EndpointRefusedError(NotifyError):
    """An endpoint refused before any byte is sent (scheme, or where it resolves)."""
