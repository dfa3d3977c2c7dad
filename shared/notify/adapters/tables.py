"""Subscriptions and deliveries on Azure Table storage, each row one JSON document.

Rows are written under their ETag, so the event counter, an owner's PATCH and a
delivery's status never overwrite each other.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableEntity, TableTransactionError, UpdateMode

from shared.platform.errors import StorageUnavailableError
from shared.platform.storage import is_table_key

from ..errors import SubscriptionConflictError
from ..models import Delivery, Subscription

__all__ = ["TableDeliveryLog", "TableSubscriptionStore"]

_PARTITION = "subscription"
_RACES = 20  # read-modify-write rounds before giving up (the queue retries then)
_COUNTER = "~counter"  # a deliveries partition's last event number


def _unavailable(what: str, exc: AzureError) -> StorageUnavailableError:
    return StorageUnavailableError(f"{what} failed: {type(exc).__name__}")


def _row(table: TableClient, partition: str, row_key: str, what: str) -> TableEntity | None:
    """One row, or None; storage failures become ours."""
    if not (is_table_key(partition) and is_table_key(row_key)):
        return None  # an id from a URL that no row can have
    try:
        return table.get_entity(partition, row_key)
    except ResourceNotFoundError:
        return None
    except AzureError as exc:
        raise _unavailable(f"reading {what}", exc) from exc


class TableSubscriptionStore:
    """``SubscriptionStore`` on the ``subscriptions`` table (one partition: they are few)."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    @staticmethod
    def _entity(subscription: Subscription) -> dict[str, Any]:
        return {
            "PartitionKey": _PARTITION,
            "RowKey": subscription.id,
            "owner": subscription.owner,
            "body": subscription.model_dump_json(),
        }

    def add(self, subscription: Subscription) -> None:
        """Store a new subscription.

        Raises:
            StorageUnavailableError: storage failed.
        """
        try:
            self._table.create_entity(self._entity(subscription))
        except AzureError as exc:
            raise _unavailable("saving a subscription", exc) from exc

    def _read(self, subscription_id: str) -> tuple[Subscription, str] | None:
        row = _row(self._table, _PARTITION, subscription_id, "a subscription")
        if row is None:
            return None
        return Subscription.model_validate_json(row["body"]), str(row.metadata["etag"])

    def get(self, subscription_id: str) -> Subscription | None:
        """One subscription, or None."""
        found = self._read(subscription_id)
        return found[0] if found else None

    def list(self, owner: str | None = None) -> list[Subscription]:
        """Every subscription, or one owner's, oldest first."""
        query = f"PartitionKey eq '{_PARTITION}'"
        params: dict[str, Any] = {}
        if owner is not None:
            query += " and owner eq @owner"
            params["owner"] = owner
        try:
            rows = list(self._table.query_entities(query, parameters=params))
        except AzureError as exc:
            raise _unavailable("listing subscriptions", exc) from exc
        found = [Subscription.model_validate_json(row["body"]) for row in rows]
        return sorted(found, key=lambda s: (s.created, s.id))

    def update(
        self, subscription_id: str, change: Callable[[Subscription], Subscription | None]
    ) -> Subscription | None:
        """Read, change, write back under the ETag; None deletes. None if there is none.

        Raises:
            SubscriptionConflictError: it kept changing under us.
            StorageUnavailableError: storage failed.
        """
        for _ in range(_RACES):
            found = self._read(subscription_id)
            if found is None:
                return None
            current, etag = found
            changed = change(current)
            try:
                if changed is None:
                    self._table.delete_entity(
                        _PARTITION,
                        subscription_id,
                        etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                    return current
                self._table.update_entity(
                    self._entity(changed),
                    mode=UpdateMode.REPLACE,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                time.sleep(random.uniform(0.005, 0.05))  # let the other writer finish
                continue
            except AzureError as exc:
                raise _unavailable("saving a subscription", exc) from exc
            return changed
        raise SubscriptionConflictError(f"subscription {subscription_id} kept changing")


class TableDeliveryLog:
    """``DeliveryLog`` on the ``deliveries`` table: partition = subscription id.

    Each partition holds a ``~counter`` row, the subscription's last event number. A claim
    writes the counter (under its ETag) and creates the delivery row in one entity-group
    transaction: one round trip numbers and stores an event, a key seen before fails the
    transaction and returns the row already there, and no number is ever handed out twice
    or lost. The counter's ETag is kept per instance, and claims for one subscription take
    turns within an instance, so the usual claim is a single call.
    """

    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._counters: dict[str, tuple[int, str | None]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @staticmethod
    def _entity(delivery: Delivery) -> dict[str, Any]:
        return {
            "PartitionKey": delivery.subscription,
            "RowKey": delivery.key,
            "state": delivery.state.value,
            "body": delivery.model_dump_json(),
        }

    def get(self, subscription_id: str, key: str) -> Delivery | None:
        """The delivery of one event, with its ETag, or None."""
        row = _row(self._table, subscription_id, key, "a delivery")
        if row is None:
            return None
        found = Delivery.model_validate_json(row["body"])
        return found.model_copy(update={"etag": str(row.metadata["etag"])})

    def _read_counter(self, subscription_id: str) -> tuple[int, str | None]:
        row = _row(self._table, subscription_id, _COUNTER, "an event counter")
        if row is None:
            return 0, None
        return int(row["count"]), str(row.metadata["etag"])

    def count(self, subscription_id: str) -> int:
        """The subscription's last event number (0 before its first event)."""
        return self._read_counter(subscription_id)[0]

    def _lock(self, subscription_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(subscription_id, threading.Lock())

    def claim(self, delivery: Delivery) -> Delivery:
        """Number and store a new delivery in one transaction; an existing key's row
        comes back unchanged.

        Raises:
            SubscriptionConflictError: other instances kept numbering first.
            StorageUnavailableError: storage failed.
        """
        sub = delivery.subscription
        with self._lock(sub):
            for _ in range(_RACES):
                count, etag = self._counters.get(sub) or self._read_counter(sub)
                numbered = delivery.model_copy(update={"number": count + 1})
                counter = {"PartitionKey": sub, "RowKey": _COUNTER, "count": count + 1}
                first: Any = (
                    ("create", counter)
                    if etag is None
                    else (
                        "update",
                        counter,
                        {
                            "mode": UpdateMode.REPLACE,
                            "etag": etag,
                            "match_condition": MatchConditions.IfNotModified,
                        },
                    )
                )
                try:
                    answers = self._table.submit_transaction(
                        [first, ("create", self._entity(numbered))]
                    )
                except TableTransactionError:
                    self._counters.pop(sub, None)
                    existing = self.get(sub, delivery.key)
                    if existing is not None:
                        return existing  # seen before: same row, same number
                    continue  # another instance numbered an event: read the counter again
                except AzureError as exc:
                    self._counters.pop(sub, None)
                    raise _unavailable("claiming a delivery", exc) from exc
                self._counters[sub] = (count + 1, str(answers[0].get("etag") or "") or None)
                return numbered.model_copy(update={"etag": str(answers[1].get("etag") or "")})
        raise SubscriptionConflictError(f"subscription {sub}: event numbering kept racing")

    def save(self, delivery: Delivery) -> bool:
        """Write back under the ETag it was read with (no ETag: create it); False if it
        changed meanwhile (or, without an ETag, exists)."""
        try:
            if delivery.etag is None:
                self._table.create_entity(self._entity(delivery))
            else:
                self._table.update_entity(
                    self._entity(delivery),
                    mode=UpdateMode.REPLACE,
                    etag=delivery.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceModifiedError, ResourceNotFoundError, ResourceExistsError):
            return False
        except AzureError as exc:
            raise _unavailable("saving a delivery", exc) from exc
        return True
