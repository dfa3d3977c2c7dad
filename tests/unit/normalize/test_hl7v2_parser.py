"""The HL7 v2 parser on hand-made messages: framing, endings, delimiters, nulls, errors.

Samples are synthetic (written for these tests); bad variants sit next to good ones.
"""

from __future__ import annotations

import pytest

from shared.normalize import NormalizationError
from shared.normalize.hl7v2 import parse_message, split_messages

ADT = (
    "MSH|^~\\&|SEND|FAC|RECV|FAC|20260301101500+0100||ADT^A01^ADT_A01|MSG1|P|2.5.1\r"
    "EVN|A01|20260301101500\r"
    "PID|1||123^^^HOSP^MR~987^^^&2.16.840.1.113883.4.1&ISO^SS||Doe^Jane^Q||19700101|F|||"
    'Main St 1\\S\\Apt 2^^Town^^12345||""\r'
    "PV1|1|I|WARD^101^A\r"
)


def test_fields_components_repetitions_and_subcomponents() -> None:
    message = parse_message(ADT)
    assert [s.name for s in message] == ["MSH", "EVN", "PID", "PV1"]
    assert message.message_type == ("ADT", "A01", "ADT_A01")
    assert (message.control_id, message.version) == ("MSG1", "2.5.1")
    pid = message.first("PID")
    assert pid is not None
    assert pid.repetitions(3) == 2
    assert pid.get(3) == "123"
    assert pid.get(3, 4) == "HOSP"
    assert pid.get(3, 1, rep=2) == "987"
    assert pid.get(3, 4, 2, rep=2) == "2.16.840.1.113883.4.1"
    assert pid.components(5) == ["Doe", "Jane", "Q"]
    assert pid.get(11) == "Main St 1^Apt 2"  # \S\ is a literal component separator
    assert pid.get(30) is None  # past the last field


def test_explicit_null_differs_from_empty() -> None:
    pid = parse_message(ADT).first("PID")
    assert pid is not None
    assert pid.get(13) is None and pid.is_null(13)
    assert pid.get(12) is None and not pid.is_null(12)


def test_msh_numbering_follows_the_standard() -> None:
    msh = parse_message(ADT).msh
    assert (msh.get(1), msh.get(2), msh.get(3), msh.get(9, 2)) == ("|", "^~\\&", "SEND", "A01")


@pytest.mark.parametrize(
    "wrap",
    [
        lambda m: m,
        lambda m: m.replace("\r", "\n"),
        lambda m: m.replace("\r", "\r\n"),
        lambda m: "\ufeff" + m,
        lambda m: "\x0b" + m + "\x1c\r",
        lambda m: "\n\n" + m + "\n\n",
    ],
    ids=["cr", "lf", "crlf", "bom", "mllp", "blank-lines"],
)
def test_framing_and_line_endings(wrap) -> None:  # type: ignore[no-untyped-def]
    message = parse_message(wrap(ADT).encode())
    assert [s.name for s in message] == ["MSH", "EVN", "PID", "PV1"]
    assert message.first("PV1").get(3, 2) == "101"  # type: ignore[union-attr]


def test_lone_lf_inside_a_cr_message_is_text() -> None:
    text = "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\rOBX|1|TX|x||line one\nline two\r"
    obx = parse_message(text).first("OBX")
    assert obx is not None and obx.get(5) == "line one\nline two"


def test_lone_lf_before_a_segment_in_a_cr_message_ends_the_segment() -> None:
    # Senders that mix endings: MSH ends with LF, the rest with CR. Read as text, the LF
    # folded PID into MSH and the message was refused for having no PID.
    text = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\nPID|1||7^^^H^MR\rPV1|1|I\r"
    message = parse_message(text)
    assert [s.name for s in message] == ["MSH", "PID", "PV1"]
    assert message.msh.get(12) == "2.5"
    assert message.first("PID").get(3) == "7"  # type: ignore[union-attr]


def test_lone_lf_before_text_that_is_no_segment_stays_text() -> None:
    text = "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\rOBX|1|TX|x||one\nOBX is fine\r"
    obx = parse_message(text).first("OBX")
    assert obx is not None and obx.get(5) == "one\nOBX is fine"


def test_a_bom_before_bytes_that_are_not_utf8_is_refused_with_the_position() -> None:
    data = b"\xef\xbb\xbfMSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||M\xfcller\r"
    with pytest.raises(NormalizationError) as caught:
        parse_message(data)  # raised UnicodeDecodeError, which poisoned the queue message
    (issue,) = caught.value.issues
    assert "byte-order mark" in issue.diagnostics
    position = data.index(b"\xfc")
    assert f"byte {position} " in issue.diagnostics


def test_values_come_out_without_padding_or_white_space_fhir_cannot_hold() -> None:
    text = (
        "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\r"
        "PID|1|| 123 ^^^H^PI ||\x0b|  |x\u2028y\r"
        "NTE|1||   indented line   \r"
    )
    message = parse_message(text)
    pid, nte = message.first("PID"), message.first("NTE")
    assert pid is not None and nte is not None
    assert (pid.get(3), pid.get(3, 5)) == ("123", "PI")  # CX.1 and CX.5 padded
    assert pid.get(5) is None  # only a vertical tab: not sent
    assert pid.get(6) is None  # only spaces: not sent
    assert pid.get(7) == "x y"  # a line separator FHIR strings cannot hold
    assert pid.components(3)[:1] == ["123"]
    assert nte.text(3) == "   indented line"  # a narrative keeps its indent
    assert nte.get(3) == "indented line"


def test_reading_every_repetition_is_linear_in_the_field() -> None:
    # Each get() used to split the whole field again: 4,000 PID-3 repetitions took 9 s.
    count = 20_000
    text = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||" + "~".join(
        f"{n}^^^H^MR" for n in range(count)
    )
    pid = parse_message(text).first("PID")
    assert pid is not None
    splits = 0
    original = str.split

    class Counting(str):
        def split(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal splits
            splits += 1
            return original(self, *args, **kwargs)

    pid.fields[3] = Counting(pid.fields[3])
    values = [pid.get(3, rep=r) for r in range(1, pid.repetitions(3) + 1)]
    assert values[-1] == str(count - 1) and len(values) == count
    assert splits == 1  # the field is split into repetitions once


def test_other_delimiters_and_the_v27_truncation_character() -> None:
    # field *, component !, repetition @, escape $, subcomponent %, truncation #
    text = "MSH*!@$%#*A*B*C*D*20260101**ADT!A08*9*P*2.7\rPID*1**X!!!H%sub@1$P$Y**Doe!Ann"
    message = parse_message(text)
    assert message.delimiters.truncation == "#"
    pid = message.first("PID")
    assert pid is not None
    assert (pid.get(3, 4, 1), pid.get(3, 4, 2)) == ("H", "sub")
    assert pid.get(3, rep=2) == "1#Y"  # $P$ is the truncation character, escaped
    assert pid.get(5, 2) == "Ann"
    assert message.message_type[:2] == ("ADT", "A08")


def test_latin1_declared_in_msh18() -> None:
    text = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5|||||DEU|8859/1\rPID|1||1||Müller^Jürgen"
    message = parse_message(text.encode("latin-1"))
    assert message.charset == "iso8859-1"
    assert message.first("PID").get(5) == "Müller"  # type: ignore[union-attr]


def test_undeclared_non_utf8_is_read_with_a_warning() -> None:
    text = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||1||Ström"
    message = parse_message(text.encode("cp1252"))
    assert message.first("PID").get(5) == "Ström"  # type: ignore[union-attr]
    assert any("not valid UTF-8" in w for _, w in message.warnings)


@pytest.mark.parametrize(
    ("data", "where", "words"),
    [
        (b"", None, "empty"),
        (b"PID|1||123", "MSH", "does not start with an MSH"),
        (b"MSH|^~", "MSH-2", "too short"),
        (b"MSH|^~\\|A", "MSH-2", "3"),
        (b"MSH|^^\\&|A", "MSH-2", "distinct"),
        (b"MSHA^~\\&A", "MSH-1", "letter"),
        (b"MSH|^~\\&|A\rthis is not a segment", "segment 2", "not a segment"),
        (b"MSH|^~\\&|A\rPID|1\rMSH|^~\\&|B", "segment 3", "second MSH"),
        (
            "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5|||||DEU|UNICODE UTF-8\rPID|ä".encode("latin-1"),
            "MSH-18",
            "UNICODE UTF-8",
        ),
    ],
)
def test_unreadable_messages_say_where_and_why(data: bytes, where: str | None, words: str) -> None:
    with pytest.raises(NormalizationError) as caught:
        parse_message(data)
    issue = caught.value.issues[0]
    assert issue.location == where
    assert words in issue.diagnostics
    outcome = caught.value.to_operation_outcome()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "error"
    assert outcome["issue"][0]["code"] == "structure"


@pytest.mark.parametrize(
    ("data", "where", "words"),
    [
        (b"MSH|Zyx Smith 555123456|A", "MSH-2", "found 19"),  # a garbled header
        (b"MSH|^&~^|Zyx Smith", "MSH-2", "distinct punctuation"),
        (b"MSHZyx Smith", "MSH-1", "letter, digit or space"),
    ],
)
def test_an_unreadable_header_is_named_by_position_never_by_its_characters(
    data: bytes, where: str, words: str
) -> None:
    with pytest.raises(NormalizationError) as caught:
        parse_message(data)
    (issue,) = caught.value.issues
    assert (issue.location, words in issue.diagnostics) == (where, True)
    assert not {"Zyx", "Smith", "555123456", "'^&~^'", "'Z'"} & set(
        issue.diagnostics.replace(":", " ").split()
    ), issue.diagnostics


def test_an_unknown_character_set_is_not_repeated() -> None:
    text = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5|||||DEU|ZZCANARY-SET\rPID|1||1"
    message = parse_message(text.encode())
    assert message.warnings == [
        ("MSH-18", "the character set MSH-18 names is not supported; read as UTF-8")
    ]


def test_split_messages_handles_mllp_batches_and_concatenation() -> None:
    two = ADT + ADT.replace("MSG1", "MSG2")
    assert [parse_message(m).control_id for m in split_messages(two)] == ["MSG1", "MSG2"]
    framed = "\x0b" + ADT + "\x1c\r" + "\x0b" + ADT.replace("MSG1", "MSG3") + "\x1c\r"
    assert [parse_message(m).control_id for m in split_messages(framed)] == ["MSG1", "MSG3"]
    batch = "FHS|^~\\&\rBHS|^~\\&\r" + two + "BTS|2\rFTS|1\r"
    assert [parse_message(m).control_id for m in split_messages(batch)] == ["MSG1", "MSG2"]


def test_msh2_with_the_escape_character_doubled_is_read_with_a_warning() -> None:
    # ``^~\\&``: a string literal escaped twice (LinuxForHealth's own test messages).
    message = parse_message("MSH|^~\\\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rPID|1||7^^^H^MR\r")
    assert message.delimiters.escape == "\\" and message.delimiters.subcomponent == "&"
    assert message.first("PID").get(3, 4) == "H"  # type: ignore[union-attr]
    assert message.warnings == [
        ("MSH-2", "MSH-2 doubles the escape character (^~\\\\&); read as ^~\\&")
    ]


def test_message_code_reads_msh9_of_one_message_and_leaves_the_rest_to_conversion() -> None:
    from shared.normalize.hl7v2.parser import message_code

    ack = b"MSH|^~\\&|A|B|C|D|20260101||ACK^A01|1|P|2.5\rMSA|AA|X\r"
    adt = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|2|P|2.5\rPID|1||7^^^H^MR\r"
    assert message_code(ack) == "ACK"
    assert message_code(b"\xef\xbb\xbf\x0b" + adt) == "ADT"
    assert message_code(ack + adt) is None  # several: the ADT converts, the ACK is refused
    assert message_code(b"MSH|^~\\&|A|B|C|D|20260101||\rPID|1\r") == ""
    assert message_code(b"MSH|^~\\&|" + b"x" * 5000 + b"|B||ADT^A01|1") is None  # past 4 KB
    assert message_code(b"BHS|^~\\&|A\r" + adt) is None
