"""MLLP framing, fed the way a socket delivers bytes: in arbitrary pieces."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.intake.mllp_framing import (
    Broken,
    Frame,
    FrameReader,
    Garbage,
    Oversized,
    frame,
)

A = b"MSH|^~\\&|S|F|R|RF|20260301||ADT^A01|C1|P|2.5.1\rPID|1\r"
B = A.replace(b"C1", b"C2")


def _feed(reader: FrameReader, data: bytes, cut: list[int]) -> list[object]:
    events: list[object] = []
    at = 0
    for point in [*sorted({c % (len(data) + 1) for c in cut}), len(data)]:
        events += reader.feed(data[at:point])
        at = point
    return events


def test_pipelined_frames_come_out_in_order() -> None:
    reader = FrameReader(max_bytes=1000)
    assert reader.feed(frame(A) + frame(B)) == [Frame(A), Frame(B)]


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_split_of_the_stream_gives_the_same_frames(cut: list[int]) -> None:
    stream = b"noise\r\n" + frame(A) + frame(B) + b"\x0bbroken" + frame(A)
    events = _feed(FrameReader(max_bytes=1000), stream, cut)
    assert [e for e in events if isinstance(e, Frame)] == [Frame(A), Frame(B), Frame(A)]
    assert Garbage(7) in events and Broken(6) in events


def test_an_oversized_frame_is_reported_once_with_its_header_and_the_next_one_is_whole() -> None:
    big = A + b"OBX|1|ED|||" + b"x" * 5000 + b"\r"
    reader = FrameReader(max_bytes=1000)
    events = _feed(reader, frame(big) + frame(B), [10, 700, 1200, 3000])
    assert events[0] == Oversized(big, len(big))  # kept up to 64 KiB: the header is in it
    assert events[1:] == [Frame(B)]
    assert not reader.in_frame


def test_memory_stays_bounded_by_the_limit_or_the_header_whichever_is_larger() -> None:
    reader = FrameReader(max_bytes=1000)
    reader.feed(b"\x0b" + A)
    for _ in range(200):
        reader.feed(b"y" * 10_000)
    (event,) = reader.feed(b"\x1c\x0d")
    assert isinstance(event, Oversized) and event.size == len(A) + 2_000_000
    assert len(event.head) == 64 * 1024 and event.head.startswith(A)


def test_a_frame_without_the_final_cr_still_ends_and_a_partial_one_is_pending() -> None:
    reader = FrameReader(max_bytes=1000)
    assert reader.feed(b"\x0b" + A + b"\x1c" + frame(B)) == [Frame(A), Frame(B)]
    assert reader.feed(b"\x0bMSH|") == [] and reader.in_frame and reader.partial == 4


def test_a_lone_0x1c_inside_a_message_is_content_not_its_end() -> None:
    # The review's reproduction: a stray 0x1C in an NTE cut the message short, and the
    # part before it was stored and acknowledged as if it were whole.
    message = A + b"NTE|1||scanned \x1c note\rOBX|1|NM|8867-4^HR^LN||72\r"
    assert FrameReader(max_bytes=1000).feed(frame(message) + frame(B)) == [
        Frame(message),
        Frame(B),
    ]
    # Split right after the 0x1C: it ends the frame only if nothing follows in time...
    reader = FrameReader(max_bytes=1000)
    first = reader.feed(b"\x0b" + A + b"\x1c")
    assert first == [Frame(A)] and reader.feed(b"\r" + frame(B)) == [Frame(B)]
