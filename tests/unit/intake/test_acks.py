"""Which ACK a message gets: commit codes by mode, and the application ACK from the
journey (synthetic messages and journey rows)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared.intake.acks import application_ack, application_outcome, commit_ack
from shared.intake.errors import (
    MissingHeaderError,
    SubmissionInProgressError,
    UnsupportedMessageTypeError,
)
from shared.intake.hl7_ack import encode_ack
from shared.intake.hl7_header import read_header
from shared.intake.models import Receipt

ORIGINAL = b"MSH|^~\\&|EHR|HOSP|INTAKE|US|20260301101500||ADT^A01|C1|P|2.5.1\rPID|1\r"
ENHANCED = b"MSH|^~\\&|EHR|HOSP|INTAKE|US|20260301101500||ADT^A01|C2|P|2.5.1|||AL|AL\rPID|1\r"
RECEIPT = Receipt("3f1c", datetime(2026, 3, 1, 10, 15, 1, tzinfo=UTC), False, "p1/x.hl7")


def _fields(ack: str) -> list[list[str]]:
    return [segment.split("|") for segment in ack.strip("\r").split("\r")]


def test_stored_is_aa_in_original_mode_and_ca_in_enhanced_mode() -> None:
    original = _fields(commit_ack(ORIGINAL, read_header(ORIGINAL), receipt=RECEIPT))
    assert original[1][:3] == ["MSA", "AA", "C1"] and len(original) == 2
    assert original[0][2:6] == ["INTAKE", "US", "EHR", "HOSP"]  # sender and receiver swapped
    assert original[0][6] == "20260301101501+0000" and original[0][8] == "ACK^A01^ACK"
    enhanced = _fields(commit_ack(ENHANCED, read_header(ENHANCED), receipt=RECEIPT))
    assert enhanced[1][:3] == ["MSA", "CA", "C2"]


def test_a_duplicate_gets_the_originals_ack_byte_for_byte() -> None:
    first = commit_ack(ORIGINAL, read_header(ORIGINAL), receipt=RECEIPT)
    again = commit_ack(ORIGINAL, read_header(ORIGINAL), receipt=RECEIPT)
    assert first == again
    other = Receipt("9a9a", RECEIPT.received, False, "p1/y.hl7")
    assert _fields(commit_ack(ORIGINAL, None, receipt=other))[0][9] != _fields(first)[0][9]


def test_a_refusal_is_ae_or_cr_with_err_code_location_and_text() -> None:
    # HL7 v2 ch. 2.9.2.2: AE, an error in the message (correct it before resending).
    refused = UnsupportedMessageTypeError("unsupported message type: QBP", "MSH-9")
    ack = _fields(commit_ack(ORIGINAL, read_header(ORIGINAL), refused=refused))
    assert ack[1][:4] == ["MSA", "AE", "C1", "unsupported message type: QBP"]
    assert ack[2][0] == "ERR" and ack[2][2] == "MSH^1^9"
    assert ack[2][3] == "200^unsupported message type: QBP^HL70357" and ack[2][4] == "E"
    no_msh = _fields(commit_ack(b"PID|1||X", None, refused=MissingHeaderError("no MSH", "MSH")))
    assert no_msh[1][:3] == ["MSA", "AE", ""] and no_msh[2][2] == "MSH^1"
    assert no_msh[2][3].startswith("100^")
    enhanced = _fields(commit_ack(ENHANCED, read_header(ENHANCED), refused=refused))
    assert enhanced[1][1] == "CR"


def test_storage_down_or_a_submission_in_progress_is_ar_or_ce() -> None:
    # Ch. 2.9.2.2 (c): AR, a failure unrelated to content or format (system down): the
    # same message is likely accepted later, so the sender may resend it unchanged.
    assert _fields(commit_ack(ORIGINAL, read_header(ORIGINAL)))[1][1] == "AR"
    assert _fields(commit_ack(ENHANCED, read_header(ENHANCED)))[1][1] == "CE"
    busy = SubmissionInProgressError("being stored by another request")
    ack = _fields(commit_ack(ORIGINAL, read_header(ORIGINAL), refused=busy))
    assert ack[1][:4] == ["MSA", "AR", "C1", "being stored by another request"]
    assert _fields(commit_ack(ENHANCED, read_header(ENHANCED), refused=busy))[1][1] == "CE"


def _row(**columns: object) -> dict[str, object]:
    return {"PartitionKey": "p1", "RowKey": "3f1c", "received_status": "stored", **columns}


def test_the_application_outcome_waits_for_normalization_and_consent() -> None:
    assert application_outcome(_row()) is None
    assert application_outcome(_row(normalize_status="normalized")) is None
    assert application_outcome(_row(normalize_status="failed")) is None  # being retried
    decided = {
        "normalize_status": "normalized",
        "consent_status": "partial",
        "consent_permitted": 7,
        "consent_denied": 2,
    }
    assert application_outcome(_row(**decided)) is None  # permitted, not yet in the record
    done = application_outcome(_row(**decided, store_status="stored"))
    assert done is not None and done.code == "AA" and "7 resources permitted, 2" in done.text
    nothing_permitted = {**decided, "consent_status": "denied", "consent_permitted": 0}
    withheld = application_outcome(_row(**nothing_permitted))
    assert withheld is not None and withheld.code == "AA"  # the patient's choice: no store


def test_what_the_record_or_consent_could_not_take_is_an_ae_and_a_parked_stage_an_ar() -> None:
    base = {"normalize_status": "normalized", "consent_status": "permitted", "consent_permitted": 3}
    foreign = [
        {"severity": "error", "code": "forbidden", "diagnostics": "Patient/x: another partner's"}
    ]
    stored_in_part = application_outcome(
        _row(**base, store_status="stored", store_issues=json.dumps(foreign))
    )
    assert stored_in_part is not None and stored_in_part.code == "AE"
    assert "another partner's" in stored_in_part.text
    unplaced = [
        {"severity": "error", "code": "processing", "diagnostics": "no patient; not stored"}
    ]
    placed_in_part = application_outcome(
        _row(
            **base,
            store_status="stored",
            consent_unplaced=1,
            consent_issues=json.dumps(unplaced),
        )
    )
    assert placed_in_part is not None and placed_in_part.code == "AE"
    retrying = _row(normalize_status="failed", normalize_attempt=2)
    assert application_outcome(retrying) is None
    parked = application_outcome(_row(**base, store_status="failed", store_attempt=5))
    assert parked is not None and parked.code == "AR" and "store" in parked.text


def test_a_rejection_is_ae_with_the_first_errors_text_and_location() -> None:
    issues = [
        {"severity": "warning", "code": "value", "diagnostics": "PID-8 unknown"},
        {"severity": "error", "code": "required", "diagnostics": "no PID", "location": ["PID"]},
    ]
    outcome = application_outcome(
        _row(normalize_status="rejected", normalize_issues=json.dumps(issues))
    )
    assert outcome is not None and (outcome.code, outcome.text) == ("AE", "no PID")
    ack = _fields(application_ack(ORIGINAL, read_header(ORIGINAL), outcome))
    assert ack[1][:4] == ["MSA", "AE", "C1", "no PID"] and ack[2][2] == "PID^1"
    partial = application_outcome(
        _row(
            normalize_status="partial",
            normalize_issues=json.dumps(issues),
            consent_status="permitted",
        )
    )
    assert partial is not None and partial.code == "AE"


def test_the_ack_is_written_in_the_messages_character_set_and_echoes_msh_18() -> None:
    # MSH-3 holds a non-ASCII byte in ISO 8859-1; the ACK echoes it in the same encoding.
    latin = b"MSH|^~\\&|KLINIK-M\xdcNCHEN|H|INTAKE|US|2026||ADT^A01|L1|P|2.5.1||||||8859/1\rPID|1\r"
    header = read_header(latin)
    ack = encode_ack(commit_ack(latin, header, receipt=RECEIPT), header)
    msh = ack.split(b"\r")[0].split(b"|")
    assert msh[4] == b"KLINIK-M\xdcNCHEN" and msh[17] == b"8859/1"
    utf8 = latin.replace(b"\xdc", "Ü".encode()).replace(b"8859/1", b"UNICODE UTF-8")
    header = read_header(utf8)
    assert encode_ack(commit_ack(utf8, header, receipt=RECEIPT), header).split(b"|")[4] == (
        "KLINIK-MÜNCHEN".encode()
    )


def test_enhanced_mode_rejects_only_a_header_it_cannot_take_and_errs_on_the_rest() -> None:
    # CR is for an interaction, version or processing id we do not take; every other
    # refusal of the message is a CE (with its ERR saying which).
    header = read_header(ENHANCED)
    typed = UnsupportedMessageTypeError("unsupported message type: QBP", "MSH-9")
    assert _fields(commit_ack(ENHANCED, header, refused=typed))[1][1] == "CR"
    empty = MissingHeaderError("the message control id (MSH-10) is empty", "MSH-10")
    ack = _fields(commit_ack(ENHANCED, header, refused=empty))
    assert ack[1][1] == "CE" and ack[2][3].startswith("101^")


def test_before_v2_5_the_err_segment_says_it_in_err_1_too() -> None:
    old = ORIGINAL.replace(b"|2.5.1\r", b"|2.3.1\r")
    typed = UnsupportedMessageTypeError("unsupported message type: QBP", "MSH-9")
    err = _fields(commit_ack(old, read_header(old), refused=typed))[2]
    assert err[1] == "MSH^1^9^200&unsupported message type: QBP&HL70357"
    assert err[2] == "MSH^1^9" and err[3].startswith("200^")
    current = _fields(commit_ack(ORIGINAL, read_header(ORIGINAL), refused=typed))[2]
    assert current[1] == ""
