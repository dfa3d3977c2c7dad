"""Reading a payload's bytes as text, with the size limit and encoding rule of its format."""

from __future__ import annotations

from .errors import IssueCode, NormalizationError

__all__ = ["read_utf8"]


def read_utf8(data: bytes, limit: int, what: str) -> str:
    """The payload as text (a UTF-8 byte-order mark is dropped).

    Raises:
        NormalizationError: over ``limit`` bytes, or not UTF-8 (the issue names the byte).
    """
    if len(data) > limit:
        raise NormalizationError.at(None, f"the {what} is over {limit} bytes", IssueCode.TOO_COSTLY)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NormalizationError.at(f"byte {exc.start}", f"a {what} must be UTF-8") from exc
