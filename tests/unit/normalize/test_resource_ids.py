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
    # Computed with uuid.uuid5 before the hand-made UUID replaced it.
    assert resource_id("p1", "Patient", "urn:x", "42") == str(
        uuid.uuid5(uuid.UUID("8f5c6b1e-3f7a-5a9c-9d38-6a1f2e4b7c10"), "p1|Patient|urn:x|42")
    )
