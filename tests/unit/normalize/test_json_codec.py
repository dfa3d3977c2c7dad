"""FHIR JSON out: decimals digit for digit on both writers, and a value the fast writer
cannot hold still written (issue 19 moved compact output to orjson)."""

from __future__ import annotations

from decimal import Decimal

import simplejson
from hypothesis import given
from hypothesis import strategies as st

from shared.normalize import json_codec

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def test_a_decimal_keeps_its_trailing_zeros_and_exponent() -> None:
    text = json_codec.dumps({"v": Decimal("5.10"), "w": Decimal("-0.00"), "x": Decimal("1E+2")})
    assert text == '{"v":5.10,"w":-0.00,"x":1E+2}'


@given(_JSON)
def test_compact_output_reads_back_as_what_simplejson_writes(value: object) -> None:
    fast = json_codec.dumps(value)
    reference = simplejson.dumps(value, use_decimal=True)
    assert json_codec.loads(fast) == json_codec.loads(reference)


def test_an_integer_past_64_bits_is_still_written_exactly() -> None:
    assert json_codec.loads(json_codec.dumps({"n": 10**30})) == {"n": 10**30}


def test_sorted_output_is_unchanged_so_content_hashes_are_too() -> None:
    value = {"b": "é", "a": Decimal("1.50")}
    assert json_codec.dumps(value, sort_keys=True) == '{"a":1.50,"b":"\\u00e9"}'
