"""Standard Webhooks signatures: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

The HMAC-SHA256 over ``id.timestamp.body`` is computed by the ``standardwebhooks``
package, the specification's reference implementation, so receivers verify with the
same code. During a secret rotation both secrets sign, space-separated, so receivers
that hold either one accept the delivery.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

__all__ = ["new_secret", "sign_delivery"]

_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64 (the spec's form)."""
    return _PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def sign_delivery(
    signing_secrets: Sequence[str], message_id: str, at: datetime, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt.

    Args:
        signing_secrets: ``whsec_`` secrets, current first; each adds a ``v1,`` signature.
        message_id: stays the same across retries and replays, so receivers de-duplicate.
        at: when this attempt is sent (the receiver checks it is recent).
        body: the exact bytes posted.
    """
    when = at.astimezone(UTC)
    text = body.decode("utf-8")
    signatures = " ".join(
        Webhook(secret).sign(msg_id=message_id, timestamp=when, data=text)
        for secret in signing_secrets
    )
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signatures,
    }
