"""HL7 ACKs echo only what is safe to echo (the review's LOW-1): a crafted header must not
put a second MSA before the real one, for readers that split segments on CR or on LF."""

from __future__ import annotations

import gzip
import re

from shared.intake.hl7_ack import build_ack


def _segments(ack: str) -> list[list[str]]:
    """Segments as the laxest reader splits them (CR, LF or both), fields by '|'."""
    return [line.split("|") for line in re.split(r"[\r\n]+", ack) if line]


def test_an_escaped_segment_in_msh_12_or_msh_9_is_not_unescaped_into_the_ack() -> None:
    # Synthetic, after the review's reproduction: MSH-12 ends in \X0D\MSA\F\AA\F\C2\F\accepted
    inject = r"\X0D\MSA\F\AA\F\C2\F\accepted"
    message = f"MSH|^~\\&|S|F|R|RF|20260101||ADT^A01{inject}|C2|P|2.5.1{inject}\rPID|1\r"
    ack = build_ack(message.encode(), "AR", "Content-Encoding 'br' is not supported")
    segments = _segments(ack)
    assert [s[0] for s in segments] == ["MSH", "MSA", "ERR"]
    assert segments[1][:3] == ["MSA", "AR", "C2"]
    assert segments[0][8] == "ACK" and segments[0][11] == "2.5.1"  # neither echoed


def test_a_line_break_in_the_header_ends_what_is_echoed() -> None:
    message = "MSH|^~\\&|S\nMSA|AA|R|RF|20260101||ADT^A01|C3|P|2.5\rPID|1\r"
    segments = _segments(build_ack(message.encode(), "AR", "refused"))
    assert [s[0] for s in segments] == ["MSH", "MSA", "ERR"]
    assert segments[0][2:6] == ["", "", "S", ""]  # the header is read up to the break
    assert segments[1][:3] == ["MSA", "AR", ""]


def test_msa_2_is_the_control_id_as_written_also_for_gzip_and_unreadable_bodies() -> None:
    message = b"MSH|^~\\&|S|F|R|RF|20260101||ORU^R01|C\\T\\4|P|2.5.1\rNOT A SEGMENT\r"
    assert _segments(build_ack(message, "AA"))[1][2] == "C\\T\\4"
    zipped = gzip.compress(message)
    assert _segments(build_ack(zipped, "AA", content_encoding="gzip"))[1][2] == "C\\T\\4"
    assert _segments(build_ack(zipped, "AR", "x"))[1][2] == ""  # not said to be gzip
    assert _segments(build_ack(b"\x1f\x8b junk", "AR", content_encoding="gzip"))[1][2] == ""


def test_the_ack_speaks_the_messages_delimiters_and_our_text_cannot_break_them() -> None:
    message = b"MSH#$~\\&#S#F#R#RF#20260101##ADT$A04#C5#P#2.4\r"
    ack = build_ack(message, "AR", "field # and $ and\rMSA#AA")
    lines = re.split(r"[\r\n]+", ack.strip())
    assert lines[0].startswith("MSH#$~\\&#R#RF#S#F#") and "#ACK$A04$ACK#" in lines[0]
    assert [line.split("#")[0] for line in lines] == ["MSH", "MSA", "ERR"]
    assert lines[1].split("#")[:3] == ["MSA", "AR", "C5"]
