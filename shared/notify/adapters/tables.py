"""Subscriptions and deliveries on Azure Table storage, each row one JSON document.

Rows are written under their ETag, so the event counter, an owner's PATCH and a
delivery's status never overwrite each other.
"""

from __future__ import annotations

import random
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
from azure.data.tables import TableClient, UpdateMode

from shared.platform.errors import StorageUnavailableError

from ..errors import SubscriptionConflictError
from ..models import Delivery, Subscription

__all__ = ["TableDeliveryLog", "TableSubscriptionStore"]

_PARTITION = "subscription"
_RACES = 20  # read-modify-write rounds before giving up (the queue retries then)


def _unavailable(what: str, exc: AzureError) -> StorageUnavailableError:
    return StorageUnavailableError(f"{what} failed: {type(exc).__name__}")


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
        try:
            row = self._table.get_entity(_PARTITION, subscription_id)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise _unavailable("reading a subscription", exc) from exc
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
    """``DeliveryLog`` on the ``deliveries`` table: partition = subscription id."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

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
        try:
            row = self._table.get_entity(subscription_id, key)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise _unavailable("reading a delivery", exc) from exc
        found = Delivery.model_validate_json(row["body"])
        return found.model_copy(update={"etag": str(row.metadata["etag"])})

    def create(self, delivery: Delivery) -> Delivery:
        """Store a new delivery; if the key is taken, the delivery already there."""
        try:
            meta = self._table.create_entity(self._entity(delivery))
        except ResourceExistsError:
            existing = self.get(delivery.subscription, delivery.key)
            if existing is None:  # deleted in between: nothing to de-duplicate against
                return self.create(delivery)
            return existing
        except AzureError as exc:
            raise _unavailable("saving a delivery", exc) from exc
        return delivery.model_copy(update={"etag": str(meta.get("etag") or "")})

    def save(self, delivery: Delivery) -> bool:
        """Write back under the ETag it was read with; False if it changed meanwhile."""
        try:
            self._table.update_entity(
                self._entity(delivery),
                mode=UpdateMode.REPLACE,
                etag=delivery.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        except AzureError as exc:
            raise _unavailable("saving a delivery", exc) from exc
        return True
