"""HL7 v2 escape sequences (v2.x chapter 2, "Use of escape sequences in text fields").

Splitting on delimiters happens first, unescaping last, per leaf value: ``\\F\\`` in a
value is a literal field separator, never a split point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import Delimiters

__all__ = ["unescape"]

# Formatting commands of FT fields that carry no text of their own.
_FORMATTING = {".fi", ".nf", ".ce", ".sk", ".in", ".ti"}


def _hex_text(payload: str, charset: str) -> str | None:
    try:
        return bytes.fromhex(payload).decode(charset)
    except (ValueError, UnicodeDecodeError):
        return None


def unescape(value: str, delimiters: Delimiters, charset: str = "utf-8") -> str:
    """The text of a leaf value with its escape sequences resolved.

    ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\P\\`` give the delimiters back; ``\\Xhh..\\`` is bytes in
    the message's character set; ``\\.br\\`` and ``\\.sp\\`` are line breaks; highlighting
    (``\\H\\``, ``\\N\\``), FT formatting commands and character-set switches (``\\C..\\``,
    ``\\M..\\``) are dropped; a locally defined ``\\Z..\\`` and anything malformed stay
    as they were, so no text is ever lost.
    """
    esc = delimiters.escape
    if not esc or esc not in value:
        return value
    named = {
        "F": delimiters.field,
        "S": delimiters.component,
        "T": delimiters.subcomponent,
        "R": delimiters.repetition,
        "E": esc,
        "P": delimiters.truncation or "",
    }
    out: list[str] = []
    pos = 0
    while True:
        start = value.find(esc, pos)
        if start < 0:
            out.append(value[pos:])
            return "".join(out)
        end = value.find(esc, start + 1)
        if end < 0:  # an unterminated escape is text
            out.append(value[pos:])
            return "".join(out)
        out.append(value[pos:start])
        body = value[start + 1 : end]
        literal = value[start : end + 1]
        if body in named and (body != "P" or delimiters.truncation):
            out.append(named[body])
        elif body in {"H", "N"} or body[:3] in _FORMATTING:
            pass
        elif body == ".br" or body.startswith(".sp"):
            out.append("\n")
        elif body[:1] == "X" and len(body) > 1:
            decoded = _hex_text(body[1:], charset)
            out.append(literal if decoded is None else decoded)
        elif body[:1] in {"C", "M"} and len(body) > 1:
            pass
        else:
            out.append(literal)
        pos = end + 1
