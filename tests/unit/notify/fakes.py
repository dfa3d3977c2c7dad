"""In-memory stand-ins for the notification ports (the real ones run on Azurite in
tests/integration/notify)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.notify.models import Answer, Delivery, Subscription
from shared.pipeline.journey import StageReport
from shared.platform.envelope import BlobRef, Envelope
from shared.platform.names import Queue
from shared.platform.secrets import SecretNotFoundError
from shared.records.reads import Reader

_etags = itertools.count(1)


class Subscriptions:
    def __init__(self, *subs: Subscription) -> None:
        self.rows = {s.id: s for s in subs}

    def add(self, subscription: Subscription) -> None:
        self.rows[subscription.id] = subscription

    def get(self, subscription_id: str) -> Subscription | None:
        return self.rows.get(subscription_id)

    def list(self, owner: str | None = None) -> list[Subscription]:
        return [s for s in self.rows.values() if owner is None or s.owner == owner]

    def update(
        self, subscription_id: str, change: Callable[[Subscription], Subscription | None]
    ) -> Subscription | None:
        current = self.rows.get(subscription_id)
        if current is None:
            return None
        changed = change(current)
        if changed is None:
            del self.rows[subscription_id]
            return current
        self.rows[subscription_id] = changed
        return changed


class Deliveries:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Delivery] = {}

    def get(self, subscription_id: str, key: str) -> Delivery | None:
        return self.rows.get((subscription_id, key))

    def count(self, subscription_id: str) -> int:
        return max((d.number for (s, _), d in self.rows.items() if s == subscription_id), default=0)

    def claim(self, delivery: Delivery) -> Delivery:
        key = (delivery.subscription, delivery.key)
        if key not in self.rows:
            number = self.count(delivery.subscription) + 1
            self.rows[key] = delivery.model_copy(
                update={"number": number, "etag": str(next(_etags))}
            )
        return self.rows[key]

    def save(self, delivery: Delivery) -> bool:
        key = (delivery.subscription, delivery.key)
        if key in self.rows and self.rows[key].etag != delivery.etag:
            return False
        if key not in self.rows and delivery.etag is not None:
            return False
        self.rows[key] = delivery.model_copy(update={"etag": str(next(_etags))})
        return True


class DeadLetters:
    def __init__(self) -> None:
        self.kept: dict[tuple[str, str], tuple[Delivery, datetime]] = {}

    def put(self, delivery: Delivery, at: datetime) -> str:
        self.kept[(delivery.subscription, delivery.key)] = (delivery, at)
        return delivery.key

    def list(self, subscription_id: str, since: datetime | None = None) -> list[Delivery]:
        return [
            d
            for (sub, _), (d, at) in self.kept.items()
            if sub == subscription_id and (since is None or at >= since)
        ]

    def remove(self, delivery: Delivery) -> None:
        self.kept.pop((delivery.subscription, delivery.key), None)


class Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[Queue, Envelope, int]] = []

    def send(self, queue: Queue, envelope: Envelope, delay: int = 0) -> None:
        self.sent.append((queue, envelope, delay))


class Payloads:
    """Version blobs in ``fhir`` by name."""

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, dict[str, str]]] = {}

    def put(
        self, resource: dict[str, Any], version: int, event: str, patients: str = "-"
    ) -> BlobRef:
        """A version blob, with the store's metadata (``patients``: "-" for none)."""
        name = f"{resource['resourceType']}/{resource['id']}/_history/{version}.json"
        body = {**resource, "meta": {"versionId": str(version)}}
        self.blobs[name] = (json.dumps(body).encode(), {"event": event, "patients": patients})
        return BlobRef(container="fhir", name=name)

    def read(self, ref: BlobRef) -> tuple[bytes, dict[str, str], str | None]:
        data, metadata = self.blobs[ref.name]
        return data, metadata, "application/fhir+json"

    def write(self, *args: Any, **kwargs: Any) -> BlobRef:
        raise NotImplementedError

    def read_version(self, kind: str, ident: str, version: int) -> dict[str, Any] | None:
        found = self.blobs.get(f"{kind}/{ident}/_history/{version}.json")
        return json.loads(found[0]) if found else None


class Record:
    """Reads through a consent answer fixed by the test."""

    def __init__(self, payloads: Payloads, permit: bool = True) -> None:
        self.payloads = payloads
        self.permit = permit
        self.readers: list[Reader] = []

    def read(
        self, reader: Reader, resource_type: str, resource_id: str, version: int | None = None
    ) -> dict[str, Any] | None:
        self.readers.append(reader)
        found = self.payloads.read_version(resource_type, resource_id, version or 1)
        return found if self.permit else None


class Secrets:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, name: str) -> str:
        if name not in self.values:
            raise SecretNotFoundError(name)
        return self.values[name]

    def set(self, name: str, value: str) -> None:
        self.values[name] = value

    def delete(self, name: str) -> None:
        self.values.pop(name, None)


class Transport:
    """Answers from a script; records what was posted."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.posts: list[tuple[str, bytes, dict[str, str]]] = []

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        self.posts.append((url, body, headers))
        return self.answers.pop(0) if self.answers else Answer(204)


class Status:
    def __init__(self) -> None:
        self.reports: list[StageReport] = []

    def record(self, partner: str, correlation_id: str, report: StageReport) -> None:
        self.reports.append(report)

    def get(self, partner: str, correlation_id: str) -> dict[str, Any] | None:
        return None
