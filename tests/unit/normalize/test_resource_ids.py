"""Resource ids are UUIDv5 of the partner-scoped key: the hand-made UUID must be exactly
the standard library's, or every stored resource would get a new id."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from shared.normalize.ids import NAMESPACE, resource_id


@given(st.text(min_size=1, max_size=20), st.text(max_size=30), st.lists(st.text(max_size=40)))
def test_resource_id_is_the_standard_uuid5_of_its_key(
    partner: str, kind: str, parts: list[str]
) -> None:
    expected = uuid.uuid5(NAMESPACE, "|".join([partner, kind, *parts]))
    made = resource_id(partner, kind, *parts)
    assert made == str(expected)
    assert uuid.UUID(made).version == 5


def test_a_known_id_is_unchanged() -> None:
    # The id df7290e (uuid.uuid5) gave this key; a stored Patient keeps it.
    assert resource_id("p1", "Patient", "urn:x", "42") == "29ae6e48-5eab-573d-99ff-9b36af92417f"
