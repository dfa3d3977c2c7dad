"""FHIR JSON in and out with decimals kept exactly as written.

FHIR says a decimal's precision is significant (``5.10`` is not ``5.1``), and the
standard ``json`` module turns every decimal into a binary float. Numbers that come from
partners are read as ``Decimal`` and written back digit for digit, by ``simplejson``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import simplejson

__all__ = ["JSONDecodeError", "dumps", "loads"]

JSONDecodeError = simplejson.JSONDecodeError  # a ValueError, with msg, lineno and colno


def loads(text: str | bytes) -> Any:
    """Parse JSON; numbers with a fraction or exponent become ``Decimal``.

    Raises:
        simplejson.JSONDecodeError: not JSON (a subclass of ``ValueError``).
    """
    return simplejson.loads(text, parse_float=Decimal)


def dumps(value: Any, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """Serialize, writing each ``Decimal`` with exactly its digits (non-ASCII text as
    \\u escapes: the fast path, and the same JSON)."""
    separators = (",", ":") if sort_keys and indent is None else None
    text: str = simplejson.dumps(
        value,
        use_decimal=True,
        indent=indent,
        sort_keys=sort_keys,
        separators=separators,
    )
    return text
