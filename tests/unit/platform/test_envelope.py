"""The queue envelope: versioned, frozen, and strict about what it reads."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
from shared.platform.errors import EnvelopeError


def _envelope() -> Envelope:
    return Envelope(
        correlation_id="ing-1",
        partner="demo-partner",
        kind=EnvelopeKind.RAW_RECEIVED,
        blob=BlobRef(container="raw", name="demo-partner/2026/11/28/abc.hl7"),
    )


def test_round_trip_keeps_every_field() -> None:
    original = _envelope()
    copy = Envelope.from_bytes(original.to_bytes())
    assert copy == original
    wire = json.loads(original.to_bytes())
    assert wire["version"] == 1
    assert wire["kind"] == "raw.received"
    assert wire["created"].endswith("Z") or wire["created"].endswith("+00:00")


def test_next_stage_keeps_correlation_and_resets_attempt() -> None:
    first = _envelope().model_copy(update={"attempt": 3})
    nxt = first.next(EnvelopeKind.BUNDLE_NORMALIZED, BlobRef(container="normalized", name="b.json"))
    assert nxt.correlation_id == first.correlation_id
    assert nxt.partner == first.partner
    assert nxt.id != first.id
    assert (nxt.kind, nxt.attempt, nxt.blob and nxt.blob.container) == (
        EnvelopeKind.BUNDLE_NORMALIZED,
        0,
        "normalized",
    )


def test_envelopes_are_frozen() -> None:
    with pytest.raises(ValidationError):
        _envelope().attempt = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (
            json.dumps(
                {"version": 2, "correlation_id": "c", "partner": "p", "kind": "raw.received"}
            ),
            "version",
        ),
        (json.dumps({"version": 1, "correlation_id": "c", "partner": "p", "kind": "nope"}), "kind"),
        (
            json.dumps(
                {
                    "version": 1,
                    "correlation_id": "c",
                    "partner": "p",
                    "kind": "raw.received",
                    "created": "2026-11-28T10:00:00",
                }
            ),
            "created",
        ),  # no offset: ambiguous
        (
            json.dumps(
                {
                    "version": 1,
                    "correlation_id": "c",
                    "partner": "p",
                    "kind": "raw.received",
                    "surprise": "x",
                }
            ),
            "surprise",
        ),
    ],
)
def test_invalid_messages_name_the_field_not_the_value(body: bytes | str, field: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        Envelope.from_bytes(body)
    assert field in str(caught.value)
    assert "2026-11-28T10:00:00" not in str(caught.value)


def test_oversized_message_is_refused() -> None:
    with pytest.raises(EnvelopeError, match="over"):
        Envelope.from_bytes(b"{" + b" " * 60_000 + b"}")


def test_id_is_a_uuid() -> None:
    assert isinstance(_envelope().id, uuid.UUID)
