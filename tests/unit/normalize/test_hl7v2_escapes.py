"""HL7 v2 escape sequences."""

from __future__ import annotations

import pytest

from shared.normalize.hl7v2 import Delimiters, unescape

D = Delimiters()
D27 = Delimiters(truncation="#")


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("plain", "plain"),
        ("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", "a|b^c&d~e\\f"),
        ("line1\\.br\\line2", "line1\nline2"),
        ("\\H\\bold\\N\\ text", "bold text"),
        ("\\X48656C6C6F\\", "Hello"),
        ("caf\\XC3A9\\", "café"),
        ("\\.in+4\\indented\\.sp\\next", "indented\nnext"),
        ("\\Zlocal\\ kept", "\\Zlocal\\ kept"),
        ("\\Xzz\\ bad hex", "\\Xzz\\ bad hex"),
        ("unterminated \\F", "unterminated \\F"),
        ("\\C2842\\switch", "switch"),
        ("\\P\\", "\\P\\"),  # before v2.7 there is no truncation character
    ],
)
def test_unescape(raw: str, text: str) -> None:
    assert unescape(raw, D) == text


def test_truncation_escape_from_v27() -> None:
    assert unescape("a\\P\\b", D27) == "a#b"


def test_latin1_hex_follows_the_message_charset() -> None:
    assert unescape("\\XE9\\", D, "iso8859-1") == "é"
