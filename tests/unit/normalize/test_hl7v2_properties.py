"""Property tests: whatever bytes arrive, the parser returns a message or a
NormalizationError; it never raises anything else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.normalize import NormalizationError
from shared.normalize.hl7v2 import parse_message, split_messages

HEADER = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\r"
HL7ISH = st.text(
    alphabet=st.sampled_from(list('MSHPIDOBX|^~\\&\r\n\x0b\x1c"0123 aé')), max_size=300
)


def _read_everything(data: bytes | str) -> None:
    message = parse_message(data)
    for segment in message:
        for n in range(len(segment.fields) + 2):
            segment.get(n)
            segment.get(n, 2, 2, rep=2)
            segment.components(n)
            segment.is_null(n)
            segment.repetitions(n)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    try:
        _read_everything(data)
    except NormalizationError as exc:
        assert exc.issues


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(HL7ISH)
def test_hl7_like_text_after_a_valid_header(body: str) -> None:
    try:
        _read_everything(HEADER + body)
    except NormalizationError as exc:
        assert exc.issues
    split_messages(HEADER + body)
