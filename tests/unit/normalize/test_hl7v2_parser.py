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
    assert any("not valid UTF-8" in w for w in message.warnings)


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
    assert message.warnings == ["the character set MSH-18 names is not supported; read as UTF-8"]


def test_split_messages_handles_mllp_batches_and_concatenation() -> None:
    two = ADT + ADT.replace("MSG1", "MSG2")
    assert [parse_message(m).control_id for m in split_messages(two)] == ["MSG1", "MSG2"]
    framed = "\x0b" + ADT + "\x1c\r" + "\x0b" + ADT.replace("MSG1", "MSG3") + "\x1c\r"
    assert [parse_message(m).control_id for m in split_messages(framed)] == ["MSG1", "MSG3"]
    batch = "FHS|^~\\&\rBHS|^~\\&\r" + two + "BTS|2\rFTS|1\r"
    assert [parse_message(m).control_id for m in split_messages(batch)] == ["MSG1", "MSG2"]
