"""Care-transition topics from an Encounter's previous and current versions."""

from __future__ import annotations

from typing import Any

from shared.notify.models import Topic
from shared.notify.topics import topics_of


def enc(status: str, place: str | None = "Location/ward-3") -> dict[str, Any]:
    found: dict[str, Any] = {"resourceType": "Encounter", "id": "e1", "status": status}
    if place:
        found["location"] = [{"location": {"reference": place}}]
    return found


def test_admission_when_the_encounter_starts() -> None:
    assert topics_of(None, enc("in-progress")) == {Topic.ADMISSION}  # A01, first version
    assert topics_of(enc("planned"), enc("in-progress")) == {Topic.ADMISSION}  # A05 then A01
    assert topics_of(enc("arrived"), enc("in-progress")) == {Topic.ADMISSION}


def test_discharge_when_it_finishes() -> None:
    assert topics_of(enc("in-progress"), enc("finished")) == {Topic.DISCHARGE}  # A03
    assert topics_of(enc("finished"), enc("finished")) == frozenset()  # A03 resent


def test_transfer_is_a_move_while_in_progress() -> None:
    moved = enc("in-progress", "Location/icu-1")
    assert topics_of(enc("in-progress"), moved) == {Topic.TRANSFER}  # A02
    assert topics_of(enc("in-progress"), enc("in-progress")) == frozenset()  # A08: no move
    assert topics_of(enc("in-progress"), enc("in-progress", None)) == frozenset()


def test_active_location_wins_over_the_first() -> None:
    before = enc("in-progress", "Location/ward-3")
    after = enc("in-progress", "Location/ward-3")
    after["location"] = [
        {"location": {"reference": "Location/ward-3"}, "status": "completed"},
        {"location": {"reference": "Location/icu-1"}, "status": "active"},
    ]
    assert topics_of(before, after) == {Topic.TRANSFER}


def test_nothing_for_other_resources_or_deletions() -> None:
    assert topics_of(None, {"resourceType": "Observation", "status": "final"}) == frozenset()
    assert topics_of(enc("in-progress"), None) == frozenset()
