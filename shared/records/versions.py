"""Deciding what a write does to a resource's versions, apart from any I/O.

A write is idempotent (content already stored -> no new version) and ordered by the
source's own time, not by arrival: a message that was made before the current version
but arrives after it is kept in history and does not replace it. Equal source times
(MSH-7 has seconds at best; A01, A08 and A03 sent in one second share one): the message
we received later wins, whatever order the parallel stages reach the store in, so one
partner's messages apply in the order it sent them (an MLLP connection's order, or
arrival over HTTP). Rows written before receipt times were kept fall back to the later
write winning.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.normalize import json_codec

from .models import CurrentVersion, WriteOutcome

__all__ = ["RECENT_HASHES", "content_hash", "plan_write"]

RECENT_HASHES = 20  # how many stored contents a resend is recognised against


def content_hash(resource: Mapping[str, Any]) -> str:
    """A hash of what a resource says, leaving out what the store itself sets."""
    meta = {
        k: v
        for k, v in (resource.get("meta") or {}).items()
        if k not in ("versionId", "lastUpdated")
    }
    body = {k: v for k, v in resource.items() if k != "meta"}
    if meta:
        body["meta"] = meta
    return hashlib.sha256(json_codec.dumps(body, sort_keys=True).encode()).hexdigest()


def _older(current: CurrentVersion, source_time: datetime, received: datetime | None) -> bool:
    """Whether content made at ``source_time`` and received at ``received`` comes before
    the current version: by the source's time, then by when we received it."""
    if source_time != current.source_time:
        return source_time < current.source_time
    return received is not None and current.received is not None and received < current.received


def plan_write(
    current: CurrentVersion | None,
    digest: str,
    source_time: datetime,
    delete: bool = False,
    received: datetime | None = None,
) -> WriteOutcome:
    """What writing content with this hash, source time and time of receipt does to the
    resource."""
    if current is None:
        return WriteOutcome.UNCHANGED if delete else WriteOutcome.CREATED
    if delete:
        if current.deleted:
            return WriteOutcome.UNCHANGED
        older = _older(current, source_time, received)
        return WriteOutcome.OUT_OF_ORDER if older else WriteOutcome.DELETED
    if not current.deleted and (digest == current.content_hash or digest in current.recent_hashes):
        return WriteOutcome.UNCHANGED
    if _older(current, source_time, received):
        return WriteOutcome.OUT_OF_ORDER
    return WriteOutcome.CREATED if current.deleted else WriteOutcome.UPDATED
