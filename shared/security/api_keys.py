"""API keys: random, shown once, stored only as a salted hash, checked in constant time.

A key reads ``fik_<key id>_<secret>``. The key id finds the stored hash without a
scan; the 256-bit secret makes a fast salted hash safe (there is nothing to guess).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = ["IssuedKey", "KeyHash", "hash_secret", "mint_key", "parse_key", "verify_secret"]

_KEY = re.compile(r"^fik_(?P<id>[a-f0-9]{16})_(?P<secret>[A-Za-z0-9_-]{43})\Z")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A newly minted key: ``token`` goes to the caller once and is never stored."""

    key_id: str
    secret: str

    @property
    def token(self) -> str:
        """The string the caller sends in ``X-API-Key``."""
        return f"fik_{self.key_id}_{self.secret}"

    def __repr__(self) -> str:
        return f"IssuedKey(key_id={self.key_id!r}, secret=***)"


@dataclass(frozen=True, slots=True)
class KeyHash:
    """What is stored for a key."""

    salt: str
    digest: str


def mint_key() -> IssuedKey:
    """A new random key id and secret."""
    return IssuedKey(key_id=secrets.token_hex(8), secret=secrets.token_urlsafe(32))


def hash_secret(secret: str, salt: str | None = None) -> KeyHash:
    """Salted HMAC-SHA256 of a secret."""
    salt = salt or secrets.token_hex(16)
    digest = hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()
    return KeyHash(salt=salt, digest=digest)


def verify_secret(secret: str, stored: KeyHash) -> bool:
    """Whether a presented secret matches the stored hash (constant time)."""
    return hmac.compare_digest(hash_secret(secret, stored.salt).digest, stored.digest)


def parse_key(token: str) -> tuple[str, str] | None:
    """Split a presented key into (key id, secret), or None if it is not one of ours."""
    found = _KEY.match(token.strip())
    return (found["id"], found["secret"]) if found else None
