"""Function-key checks for HTTP triggers, as the runtime applies auth levels.

``anonymous`` needs nothing; ``function`` takes any function key or the master key,
from the ``x-functions-key`` header or the ``code`` query parameter; ``admin`` takes
only the master key. Keys are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["KeyRing"]


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The host's function keys and master key."""

    function_keys: tuple[str, ...]
    master_key: str | None

    @classmethod
    def from_settings(cls, function_keys: Mapping[str, str], master_key: str | None) -> KeyRing:
        """Build from local settings, ignoring empty values."""
        return cls(tuple(k for k in function_keys.values() if k), master_key or None)

    @staticmethod
    def _any(candidate: str, keys: Iterable[str]) -> bool:
        found = False
        for key in keys:  # no early exit: time does not tell which key matched
            found |= hmac.compare_digest(candidate.encode(), key.encode())
        return found

    def allows(self, auth_level: str, presented: str | None) -> bool:
        """Whether a request with this key may call a function of this auth level."""
        level = auth_level.lower()
        if level == "anonymous":
            return True
        if not presented:
            return False
        master = (self.master_key,) if self.master_key else ()
        if level == "admin":
            return self._any(presented, master)
        return self._any(presented, (*self.function_keys, *master))
