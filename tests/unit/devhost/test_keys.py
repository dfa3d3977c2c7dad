"""Auth levels for HTTP triggers."""

from __future__ import annotations

import pytest

from devhost.keys import KeyRing

RING = KeyRing.from_settings({"default": "fkey", "other": "fkey2", "blank": ""}, "mkey")


@pytest.mark.parametrize(
    ("level", "key", "allowed"),
    [
        ("anonymous", None, True),
        ("ANONYMOUS", "junk", True),
        ("function", None, False),
        ("function", "", False),
        ("function", "fkey", True),
        ("function", "fkey2", True),
        ("function", "mkey", True),
        ("function", "fkey ", False),
        ("admin", "fkey", False),
        ("admin", "mkey", True),
    ],
)
def test_auth_levels(level: str, key: str | None, allowed: bool) -> None:
    assert RING.allows(level, key) is allowed


def test_no_master_key_means_admin_is_closed() -> None:
    ring = KeyRing.from_settings({"default": "k"}, None)
    assert not ring.allows("admin", "k")
    assert not ring.allows("admin", "")
