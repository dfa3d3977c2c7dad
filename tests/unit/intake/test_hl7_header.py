"""The door's header check: what an ACK may say AA to (synthetic messages)."""

from __future__ import annotations

import pytest

from shared.intake.errors import MissingHeaderError, UnsupportedMessageTypeError
from shared.intake.hl7_header import AckCondition, check_header, read_header

ADT = b"MSH|^~\\&|EHR|HOSP|INTAKE|US|20260301101500||ADT^A01|C1|P|2.5.1\rPID|1||X^^^H^MR\r"


def test_a_body_without_msh_is_refused_as_a_segment_sequence_error() -> None:
    with pytest.raises(MissingHeaderError) as refused:
        check_header(b"PID|1||X")
    assert refused.value.location == "MSH" and refused.value.hl7_code == "100"
    assert refused.value.status == 400


@pytest.mark.parametrize(
    ("message", "location"),
    [
        (b"MSH|^~\\&|EHR|HOSP|INTAKE|US|20260301||^A01|C1|P|2.5.1\rPID|1\r", "MSH-9"),
        (b"MSH|^~\\&|EHR|HOSP|INTAKE|US|20260301||ADT^A01||P|2.5.1\rPID|1\r", "MSH-10"),
        (b"MSH|^~\\&|EHR|HOSP|INTAKE|US|20260301||ADT^A01|  |P|2.5.1\r", "MSH-10"),
    ],
)
def test_an_empty_msh_9_or_msh_10_is_a_required_field_missing(
    message: bytes, location: str
) -> None:
    with pytest.raises(MissingHeaderError) as refused:
        check_header(message)
    assert refused.value.location == location and refused.value.hl7_code == "101"


def test_a_type_we_do_not_convert_is_refused_or_passed_by_the_partners_setting() -> None:
    query = ADT.replace(b"ADT^A01", b"QBP^Q22")
    with pytest.raises(UnsupportedMessageTypeError) as refused:
        check_header(query)
    assert refused.value.hl7_code == "200" and refused.value.location == "MSH-9"
    header = check_header(query, refuse_unmapped=False)
    assert header is not None and header.message_code == "QBP"


def test_a_batch_or_a_stream_of_messages_is_checked_later_message_by_message() -> None:
    assert check_header(b"FHS|^~\\&|EHR\rBHS|^~\\&\r" + ADT) is None
    assert check_header(ADT + ADT.replace(b"ADT^A01", b"QBP^Q22")) is None


def test_original_and_enhanced_mode_and_the_character_set_come_from_msh() -> None:
    original = read_header(ADT)
    assert original is not None and not original.enhanced and original.control_id == "C1"
    fields = b"|".join([b"MSH", b"^~\\&", b"EHR", b"H", b"IN", b"US", b"2026", b"", b"ADT^A08"])
    enhanced = fields + b"|C2|P|2.5.1|||AL|ER|USA|8859/1\rPID|1||X^^^H^MR||M\xfcller\r"
    header = read_header(enhanced)
    assert header is not None and header.enhanced
    assert header.accept_ack is AckCondition.ALWAYS
    assert header.application_ack is AckCondition.ERROR
    assert header.charset == "iso8859-1"
    assert AckCondition.ERROR.wanted(success=False) and not AckCondition.ERROR.wanted(True)
    assert AckCondition.SUCCESS.wanted(True) and not AckCondition.NEVER.wanted(False)
