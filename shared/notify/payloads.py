"""Notification bodies: the FHIR R4 backport notification Bundle, or a CloudEvents event.

The Bundle follows the Subscriptions R5 Backport IG for R4: a ``history`` Bundle whose
first entry is the ``backport-subscription-status-r4`` Parameters (subscription, topic,
status, type, events-since-subscription-start, and one notification-event with its
number, timestamp and focus), then the focus entry, with the resource for
``full-resource`` and without it for ``id-only``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.normalize import json_codec

from .models import Event, Format, Subscription, Topic

__all__ = ["CLOUDEVENTS_JSON", "FHIR_JSON", "Notification", "build_notification", "topic_url"]

FHIR_JSON = "application/fhir+json"
CLOUDEVENTS_JSON = "application/cloudevents+json"
_STATUS_PROFILE = (
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
    "backport-subscription-status-r4"
)
_BUNDLE_PROFILE = (
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
    "backport-subscription-notification-r4"
)
_TOPIC_BASE = "urn:fhir-intake:SubscriptionTopic:"
_METHOD = {
    Event.CREATE: ("POST", "201"),
    Event.UPDATE: ("PUT", "200"),
    Event.DELETE: ("DELETE", "204"),
}


@dataclass(frozen=True, slots=True)
class Notification:
    """One event for one subscription, ready to render."""

    subscription: Subscription
    message_id: str  # webhook-id: stable across attempts and replays
    number: int  # the event's number for this subscription
    event: Event
    topic: Topic | None
    resource_type: str
    resource_id: str
    version: int
    resource: Mapping[str, Any] | None  # None: id-only (asked for, or consent said no)
    events_so_far: int = 0  # events-since-subscription-start when this one is sent


def topic_url(topic: Topic | None) -> str:
    """The canonical we name a topic by (criteria-only subscriptions: ``resource-change``)."""
    return _TOPIC_BASE + (topic.value if topic else "resource-change")


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bundle(note: Notification, at: datetime) -> dict[str, Any]:
    sub = note.subscription
    base = sub.base_url.rstrip("/")
    focus = f"{base}/{note.resource_type}/{note.resource_id}"
    status = {
        "resourceType": "Parameters",
        "meta": {"profile": [_STATUS_PROFILE]},
        "parameter": [
            {
                "name": "subscription",
                "valueReference": {"reference": f"{base}/Subscription/{sub.id}"},
            },
            {"name": "topic", "valueCanonical": topic_url(note.topic)},
            {"name": "status", "valueCode": sub.status.value},
            {"name": "type", "valueCode": "event-notification"},
            {
                "name": "events-since-subscription-start",
                "valueString": str(max(note.events_so_far, note.number)),
            },
            {
                "name": "notification-event",
                "part": [
                    {"name": "event-number", "valueString": str(note.number)},
                    {"name": "timestamp", "valueInstant": _instant(at)},
                    {
                        "name": "focus",
                        "valueReference": {"reference": f"{focus}/_history/{note.version}"},
                    },
                ],
            },
        ],
    }
    method, answer = _METHOD[note.event]
    entry: dict[str, Any] = {"fullUrl": focus}
    if note.resource is not None:
        entry["resource"] = dict(note.resource)
    entry["request"] = {
        "method": method,
        "url": note.resource_type
        if method == "POST"
        else f"{note.resource_type}/{note.resource_id}",
    }
    entry["response"] = {"status": answer}
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, note.message_id)),
        "meta": {"profile": [_BUNDLE_PROFILE]},
        "type": "history",
        "timestamp": _instant(at),
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, note.message_id)}",
                "resource": status,
                "request": {"method": "GET", "url": f"{base}/Subscription/{sub.id}/$status"},
                "response": {"status": "200"},
            },
            entry,
        ],
    }


def _cloud_event(note: Notification, at: datetime) -> dict[str, Any]:
    kind = f"topic.{note.topic.value}" if note.topic else f"resource.{note.event.value}"
    data = (
        dict(note.resource)
        if note.resource is not None
        else {
            "resourceType": note.resource_type,
            "id": note.resource_id,
            "meta": {"versionId": str(note.version)},
        }
    )
    return {
        "specversion": "1.0",
        "id": note.message_id,
        "source": note.subscription.base_url,
        "type": f"org.fhir-intake.{kind}",
        "subject": f"{note.resource_type}/{note.resource_id}/_history/{note.version}",
        "time": _instant(at),
        "datacontenttype": FHIR_JSON,
        "subscription": note.subscription.id,
        "eventnumber": note.number,
        "data": data,
    }


def build_notification(note: Notification, at: datetime) -> tuple[bytes, str]:
    """The body and its Content-Type, in the subscription's format."""
    if note.subscription.format is Format.CLOUDEVENTS:
        return json_codec.dumps(_cloud_event(note, at)).encode(), CLOUDEVENTS_JSON
    return json_codec.dumps(_bundle(note, at)).encode(), FHIR_JSON
