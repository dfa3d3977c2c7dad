"""Notification bodies: the R4 backport Bundle (validated with the R4B models) and
CloudEvents 1.0."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from shared.notify.models import Content, Event, Format, Subscription, Topic
from shared.notify.payloads import Notification, build_notification

AT = datetime(2026, 3, 1, 10, 15, 0, 123000, tzinfo=UTC)
ENCOUNTER = {
    "resourceType": "Encounter",
    "id": "e1",
    "meta": {"versionId": "1"},
    "status": "in-progress",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
}


def subscription(fmt: Format = Format.FHIR) -> Subscription:
    return Subscription(
        id="a" * 32,
        owner="acme",
        criteria="Encounter",
        topics=frozenset({Topic.ADMISSION}),
        endpoint="https://hooks.example.org/in",
        content=Content.FULL_RESOURCE,
        format=fmt,
        base_url="https://intake.example.org/api/fhir",
        created=AT,
        updated=AT,
    )


def note(
    resource: dict[str, Any] | None, fmt: Format = Format.FHIR, event: Event = Event.CREATE
) -> Notification:
    return Notification(
        subscription=subscription(fmt),
        message_id="msg_x_7",
        number=7,
        event=event,
        topic=Topic.ADMISSION if event is not Event.DELETE else None,
        resource_type="Encounter",
        resource_id="e1",
        version=1,
        resource=resource,
        events_so_far=7,
    )


def params(bundle: dict[str, Any]) -> dict[str, Any]:
    return {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}


def test_full_resource_bundle_is_a_valid_r4_history_bundle() -> None:
    body, content_type = build_notification(note(ENCOUNTER), AT)
    assert content_type == "application/fhir+json"
    bundle = json.loads(body)
    Bundle.model_validate(bundle)  # R4B models validate R4 structure
    assert bundle["type"] == "history"
    status = params(bundle)
    base = "https://intake.example.org/api/fhir"
    assert (
        status["subscription"]["valueReference"]["reference"] == f"{base}/Subscription/{'a' * 32}"
    )
    assert status["topic"]["valueCanonical"] == "urn:fhir-intake:SubscriptionTopic:admission"
    assert status["type"]["valueCode"] == "event-notification"
    assert status["events-since-subscription-start"]["valueString"] == "7"
    parts = {p["name"]: p for p in status["notification-event"]["part"]}
    assert parts["event-number"]["valueString"] == "7"
    assert parts["timestamp"]["valueInstant"] == "2026-03-01T10:15:00.123Z"
    assert parts["focus"]["valueReference"]["reference"] == f"{base}/Encounter/e1/_history/1"
    focus = bundle["entry"][1]
    assert focus["fullUrl"] == f"{base}/Encounter/e1"
    assert focus["resource"]["status"] == "in-progress"
    assert focus["request"] == {"method": "POST", "url": "Encounter"}


def test_id_only_bundle_carries_no_resource() -> None:
    bundle = json.loads(build_notification(note(None), AT)[0])
    Bundle.model_validate(bundle)
    assert "resource" not in bundle["entry"][1]
    assert bundle["entry"][1]["fullUrl"].endswith("/Encounter/e1")


def test_deletions_are_delete_entries() -> None:
    bundle = json.loads(build_notification(note(None, event=Event.DELETE), AT)[0])
    Bundle.model_validate(bundle)
    assert bundle["entry"][1]["request"] == {"method": "DELETE", "url": "Encounter/e1"}
    assert params(bundle)["topic"]["valueCanonical"].endswith(":resource-change")


def test_cloudevents_structured_json() -> None:
    body, content_type = build_notification(note(ENCOUNTER, Format.CLOUDEVENTS), AT)
    assert content_type == "application/cloudevents+json"
    event = json.loads(body)
    assert event["specversion"] == "1.0"
    assert event["id"] == "msg_x_7"
    assert event["type"] == "org.fhir-intake.topic.admission"
    assert event["subject"] == "Encounter/e1/_history/1"
    assert event["time"] == "2026-03-01T10:15:00.123Z"
    assert event["datacontenttype"] == "application/fhir+json"
    assert event["data"]["status"] == "in-progress"
    only = json.loads(build_notification(note(None, Format.CLOUDEVENTS), AT)[0])
    assert only["data"] == {"resourceType": "Encounter", "id": "e1", "meta": {"versionId": "1"}}
