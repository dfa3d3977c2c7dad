"""MLLP framing (HL7 v2 over TCP): ``0x0B`` message ``0x1C 0x0D``, read incrementally.

The reader never holds more than the size limit: a frame past it is reported once as
oversized with its first bytes (enough for the header, so the refusal's ACK still names
the message) and the rest is skipped to its end. Bytes outside a frame are counted and
skipped, and a start block inside a frame ends the broken frame before it, so one bad
sender's noise never swallows the next message. A frame ends at ``0x1C 0x0D``; also at a
``0x1C`` followed by the next frame's ``0x0B`` or by nothing yet (senders that leave out
the ``0x0D`` wait for their ACK there). Any other ``0x1C`` is content, kept: cutting the
message there would store it short and acknowledge it whole.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["END", "START", "Broken", "Frame", "FrameReader", "Garbage", "Oversized", "frame"]

START = b"\x0b"
END = b"\x1c\x0d"
_VT = 0x0B
_CR = 0x0D
_HEAD = 64 * 1024  # what an oversized frame keeps: its header, for the refusal's ACK


def frame(message: bytes) -> bytes:
    """One message in MLLP framing."""
    return START + message + END


@dataclass(frozen=True, slots=True)
class Frame:
    """A whole message."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Oversized:
    """A message over the limit: its first bytes, and how many it had in all."""

    head: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes between frames, skipped (only their number is kept: they may be PHI)."""

    size: int


@dataclass(frozen=True, slots=True)
class Broken:
    """A frame that a new start block cut short, dropped unanswered."""

    size: int


Event = Frame | Oversized | Garbage | Broken


class FrameReader:
    """Turns a byte stream into frames and what was skipped, chunk by chunk."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._buffer = bytearray()
        self._size = 0  # bytes in the current frame, kept or not
        self._in_frame = False
        self._garbage = 0
        self._pending_cr = False  # a frame just ended with 0x1C: a 0x0D may follow

    @property
    def in_frame(self) -> bool:
        """Whether a frame has started and not ended (the read time-out applies)."""
        return self._in_frame

    @property
    def partial(self) -> int:
        """Bytes of a frame begun and not ended, or skipped and not yet reported."""
        return self._size if self._in_frame else self._garbage

    def feed(self, chunk: bytes) -> list[Event]:
        """What ``chunk`` completes, in order."""
        events: list[Event] = []
        i, n = 0, len(chunk)
        while i < n:
            if self._pending_cr:
                self._pending_cr = False
                if chunk[i] == _CR:
                    i += 1
                    continue
            if not self._in_frame:
                start = chunk.find(START, i)
                skipped = (n if start < 0 else start) - i
                if skipped:
                    self._garbage += skipped
                if start < 0:
                    break
                if self._garbage:
                    events.append(Garbage(self._garbage))
                    self._garbage = 0
                self._in_frame, self._size, self._buffer = True, 0, bytearray()
                i = start + 1
                continue
            end = chunk.find(b"\x1c", i)
            restart = chunk.find(START, i, end if end >= 0 else n)
            if restart >= 0:  # a new frame began before this one ended
                self._take(chunk[i:restart])
                events.append(Broken(self._size))
                self._in_frame = False
                i = restart
                continue
            if end < 0:
                self._take(chunk[i:])
                break
            after = chunk[end + 1] if end + 1 < n else None
            if after is not None and after not in (_CR, _VT):  # a 0x1C inside the message
                self._take(chunk[i : end + 1])
                i = end + 1
                continue
            self._take(chunk[i:end])
            events.append(self._finish())
            self._pending_cr = after is None  # its 0x0D may come in the next chunk
            i = end + 2 if after == _CR else end + 1
        return events

    def _take(self, part: bytes) -> None:
        self._size += len(part)
        room = max(self._max, _HEAD) - len(self._buffer)  # past it, bytes are only counted
        if room > 0:
            self._buffer += part[:room]

    def _finish(self) -> Frame | Oversized:
        self._in_frame = False
        data, size = bytes(self._buffer), self._size
        self._buffer = bytearray()
        return Oversized(data[:_HEAD], size) if size > self._max else Frame(data)
