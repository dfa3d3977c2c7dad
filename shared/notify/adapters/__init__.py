"""Notification I/O: subscription and delivery tables, dead-letter blobs, webhook POSTs."""

from __future__ import annotations

from .dead_letters import BlobDeadLetters
from .tables import TableDeliveryLog, TableSubscriptionStore
from .webhook_http import HttpWebhookTransport

__all__ = ["BlobDeadLetters", "HttpWebhookTransport", "TableDeliveryLog", "TableSubscriptionStore"]
