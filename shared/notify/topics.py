"""Care-transition topics, read from an Encounter's previous and current version.

Like an R5 SubscriptionTopic's resource trigger (``%previous`` / ``%current``), so they
hold for any source: our HL7 v2 converter sets Encounter.status from the ADT event (A01
in-progress, A03 finished, A02 keeps in-progress and moves PV1-3), and FHIR input sets
it directly. A resend that changes nothing stores no version and so raises no topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .models import Topic

__all__ = ["topics_of"]


def _location(encounter: Mapping[str, Any]) -> str | None:
    """The current location (Encounter.location: the active one, else the first)."""
    places = [p for p in encounter.get("location") or () if isinstance(p, Mapping)]
    chosen = next((p for p in places if p.get("status") == "active"), places[0] if places else None)
    reference = (chosen or {}).get("location") or {}
    return reference.get("reference") if isinstance(reference, Mapping) else None


def topics_of(
    previous: Mapping[str, Any] | None, current: Mapping[str, Any] | None
) -> frozenset[Topic]:
    """The topics one change of an Encounter raises (none for other resources).

    Args:
        previous: the version before (None when this one created the resource).
        current: this version (None when it deleted the resource).
    """
    if current is None or current.get("resourceType") != "Encounter":
        return frozenset()
    now = current.get("status")
    before = (previous or {}).get("status")
    if now == "in-progress" and before != "in-progress":
        return frozenset({Topic.ADMISSION})
    if now == "finished" and before != "finished":
        return frozenset({Topic.DISCHARGE})
    if (
        now == before == "in-progress"
        and previous is not None
        and _location(previous) != _location(current)
        and _location(current) is not None
    ):
        return frozenset({Topic.TRANSFER})
    return frozenset()
