"""A parsed HL7 v2 message: segments of raw fields, split further only when read.

Positions follow the standard's numbering: ``PID-3`` is the third field of PID,
``PID-3[2].4.1`` its second repetition, fourth component, first subcomponent. For MSH,
MSH-1 is the field separator and MSH-2 the encoding characters, as the standard counts.
A value of ``""`` is an explicit null ("delete this"), distinct from an empty value
("not sent"): ``is_null`` tells them apart, ``get`` returns None for both.

Values come out as FHIR can hold them: padding is removed (HL7 counts trailing spaces
as insignificant, and a padded code or identifier is a different one in FHIR), a value
that is only white space is not sent, and white space FHIR strings do not allow (vertical
tab, NEL, line and paragraph separators, no-break spaces) becomes a space. ``text``
keeps the leading spaces a narrative (ST, TX, FT) may indent with. A field is split into
repetitions once and the parts kept, so reading every repetition is linear in its size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from .escapes import unescape

__all__ = ["NULL", "Delimiters", "Message", "Segment", "location"]

NULL = '""'
# White space other than space, CR, LF and tab: FHIR's string pattern has no room for it.
_ODD_SPACE = re.compile(r"[^\S \r\n\t]")


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The encoding characters from MSH-1 and MSH-2 (a fifth, truncation, from v2.7)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str | None = None


def location(
    segment: str, field_no: int, rep: int = 1, comp: int | None = None, sub: int | None = None
) -> str:
    """A position as partners' engineers write it: ``PID-3[2].4.1``."""
    text = f"{segment}-{field_no}"
    if rep != 1:
        text += f"[{rep}]"
    if comp is not None:
        text += f".{comp}"
        if sub is not None:
            text += f".{sub}"
    return text


@dataclass(slots=True)
class Segment:
    """One segment; ``fields[n]`` is the raw (still escaped) text of field n."""

    name: str
    fields: list[str]
    line: int  # 1-based position in the message, for error locations
    message: Message = field(repr=False)
    _reps: dict[int, list[str]] = field(default_factory=dict, repr=False, compare=False)
    _read: set[int] = field(default_factory=set, repr=False, compare=False)

    def unread(self) -> list[int]:
        """The fields holding a value that nothing has read: what conversion did not carry."""
        fields, read = self.fields, self._read
        return [n for n, v in enumerate(fields) if n and v and n not in read and v != NULL]

    def raw(self, n: int) -> str:
        """The raw text of field n ("" when the segment has fewer fields)."""
        return self.fields[n] if 0 <= n < len(self.fields) else ""

    def _repetitions_of(self, n: int) -> list[str]:
        """Field n split into its raw repetitions, once per segment."""
        self._read.add(n)
        reps = self._reps.get(n)
        if reps is None:
            text = self.fields[n] if 0 <= n < len(self.fields) else ""
            if not text:
                reps = []
            elif self.name == "MSH" and n <= 2:
                reps = [text]
            else:
                reps = text.split(self.message.delimiters.repetition)
            self._reps[n] = reps
        return reps

    def _leaf(self, n: int, rep: int, comp: int, sub: int) -> str:
        fields = self.fields
        text = fields[n] if 0 <= n < len(fields) else ""
        self._read.add(n)
        if not text or (self.name == "MSH" and n <= 2):
            return text if comp == 1 and sub == 1 and rep == 1 else ""
        d = self.message.delimiters
        if rep != 1 or d.repetition in text:  # split once: reading every one stays linear
            reps = self._reps.get(n) or self._repetitions_of(n)
            text = reps[rep - 1] if 0 < rep <= len(reps) else ""
        if comp != 1 or d.component in text:
            comps = text.split(d.component, comp)
            text = comps[comp - 1] if comp <= len(comps) else ""
        if sub != 1 or d.subcomponent in text:
            subs = text.split(d.subcomponent, sub)
            text = subs[sub - 1] if sub <= len(subs) else ""
        return text

    def _value(self, n: int, rep: int, comp: int, sub: int) -> str | None:
        text = self._leaf(n, rep, comp, sub)
        if not text or text == NULL:
            return None
        if not (self.name == "MSH" and n <= 2) and self.message.delimiters.escape in text:
            text = unescape(text, self.message.delimiters, self.message.charset)
        if not text.isprintable():
            text = _ODD_SPACE.sub(" ", text)
        return text

    def get(self, n: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str | None:
        """The unescaped value at a position without padding, or None when it is empty,
        blank or an explicit null."""
        # _leaf and _value, inlined: this is the converter's hottest call.
        fields = self.fields
        text = fields[n] if 0 <= n < len(fields) else ""
        self._read.add(n)
        if not text:
            return None
        if self.name == "MSH" and n <= 2:
            return text if comp == 1 and sub == 1 and rep == 1 and text != NULL else None
        d = self.message.delimiters
        if rep != 1 or d.repetition in text:
            reps = self._reps.get(n) or self._repetitions_of(n)
            text = reps[rep - 1] if 0 < rep <= len(reps) else ""
        if comp != 1 or d.component in text:
            comps = text.split(d.component, comp)
            text = comps[comp - 1] if comp <= len(comps) else ""
        if sub != 1 or d.subcomponent in text:
            subs = text.split(d.subcomponent, sub)
            text = subs[sub - 1] if sub <= len(subs) else ""
        if not text or text == NULL:
            return None
        if d.escape in text:
            text = unescape(text, d, self.message.charset)
        if not text.isprintable():
            text = _ODD_SPACE.sub(" ", text)
        return text.strip() or None

    def text(self, n: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str | None:
        """As ``get``, keeping the leading spaces a narrative line may be indented with."""
        text = self._value(n, rep, comp, sub)
        if text is None or not text.strip():
            return None
        return text.rstrip()

    def is_null(self, n: int, comp: int = 1, sub: int = 1, rep: int = 1) -> bool:
        """Whether the position holds the explicit null ``""``."""
        return self._leaf(n, rep, comp, sub) == NULL

    def repetitions(self, n: int) -> int:
        """How many repetitions field n has (0 when empty)."""
        return len(self._repetitions_of(n))

    def components(self, n: int, rep: int = 1) -> list[str | None]:
        """The unescaped components of one repetition of field n, without padding."""
        reps = self._repetitions_of(n)
        text = reps[rep - 1] if 0 < rep <= len(reps) else ""
        if not text:
            return []
        d = self.message.delimiters
        parts = []
        for part in text.split(d.component):
            value = None if not part or part == NULL else self.message.unescape(part)
            if value is not None and not value.isprintable():
                value = _ODD_SPACE.sub(" ", value)
            parts.append(value.strip() or None if value is not None else None)
        return parts

    def location(
        self, n: int, rep: int = 1, comp: int | None = None, sub: int | None = None
    ) -> str:
        """This segment's position for error messages."""
        return location(self.name, n, rep, comp, sub)


@dataclass(slots=True)
class Message:
    """A parsed message: its delimiters, character set and segments in order."""

    delimiters: Delimiters
    charset: str
    segments: list[Segment] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (location, text)

    def unescape(self, text: str) -> str:
        """Resolve escape sequences with this message's delimiters and character set."""
        return unescape(text, self.delimiters, self.charset)

    @property
    def msh(self) -> Segment:
        """The header segment (always the first)."""
        return self.segments[0]

    @property
    def message_type(self) -> tuple[str | None, str | None, str | None]:
        """MSH-9: message code, trigger event, structure (``ADT``, ``A01``, ``ADT_A01``)."""
        msh = self.msh
        return msh.get(9, 1), msh.get(9, 2), msh.get(9, 3)

    @property
    def control_id(self) -> str | None:
        """MSH-10, the sender's id for this message."""
        return self.msh.get(10)

    @property
    def version(self) -> str | None:
        """MSH-12.1, the HL7 version (``2.5.1``)."""
        return self.msh.get(12)

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    def all(self, name: str) -> list[Segment]:
        """Every segment with this id, in order."""
        return [s for s in self.segments if s.name == name]

    def first(self, name: str) -> Segment | None:
        """The first segment with this id, or None."""
        return next((s for s in self.segments if s.name == name), None)
