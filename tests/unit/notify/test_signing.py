"""Standard Webhooks signatures, checked with the package receivers use."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.notify.signing import new_secret, sign_delivery


def test_secrets_are_whsec_and_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32


def test_a_receiver_verifies_our_signature() -> None:
    secret = new_secret()
    now = datetime.now(UTC)
    body = b'{"resourceType":"Bundle","type":"history"}'
    headers = sign_delivery([secret], "msg_1", now, body)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert Webhook(secret).verify(body, headers) == {"resourceType": "Bundle", "type": "history"}


def test_the_signature_is_hmac_sha256_over_id_timestamp_body() -> None:
    """Computed independently of the package, from the specification's definition."""
    secret = new_secret()
    at = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    headers = sign_delivery([secret], "msg_9", at, b"{}")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, f"msg_9.{int(at.timestamp())}.{{}}".encode(), hashlib.sha256)
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected.digest()).decode()


def test_changed_body_wrong_secret_or_stale_timestamp_fail() -> None:
    secret = new_secret()
    now = datetime.now(UTC)
    headers = sign_delivery([secret], "msg_2", now, b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(b'{"a":1}', headers)
    old = sign_delivery([secret], "msg_2", now - timedelta(minutes=10), b'{"a":1}')
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(b'{"a":1}', old)


def test_during_a_rotation_either_secret_verifies() -> None:
    new, old = new_secret(), new_secret()
    body = b"{}"
    headers = sign_delivery([new, old], "msg_3", datetime.now(UTC), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_timestamps_are_utc_seconds_whatever_the_offset() -> None:
    secret = new_secret()
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    local = at.astimezone(datetime.now().astimezone().tzinfo)
    assert sign_delivery([secret], "m", local, b"{}") == sign_delivery([secret], "m", at, b"{}")
