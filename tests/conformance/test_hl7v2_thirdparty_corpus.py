"""Other projects' HL7 v2 test messages (LinuxForHealth, python-hl7, hl7apy): each one
converts to valid R4, or is refused for a reason a person would accept.

Many are parser tests, deliberately odd. Every refusal is listed below with its reason,
so a new refusal (a message we stopped converting) fails here, and so does a listed one
that now converts (take it off the list). Skipped, with the reason, where
../shared/corpus is absent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class

from shared.normalize import NormalizationError
from shared.normalize.context import ConversionContext
from shared.normalize.models import PayloadFormat
from shared.normalize.service import convert_payload
from tests.conftest import CORPUS

BASE = CORPUS / "hl7v2-thirdparty"
FILES = sorted(BASE.glob("*/*.hl7")) if BASE.is_dir() else []
CTX = ConversionContext(partner="corpus", received=datetime(2026, 1, 1, tzinfo=UTC))

pytestmark = pytest.mark.skipif(not FILES, reason=f"third-party HL7 v2 corpus not found at {BASE}")

_NO_PID = "PID: {} messages need a PID segment to say whose data it is"
_UNSUPPORTED = "MSH-9: unsupported message type"
_NO_TYPE = "MSH-9: the message type (MSH-9) is empty"
# file -> the start of the first issue's text, grouped by why the refusal is right.
REFUSED: dict[str, str] = {
    # Queries, query responses, MLLP test frames and custom types: nothing to keep as data
    # (QBP/RSP are a patient-demographics query and its answer, not a feed).
    **{
        f"hl7apy/{name}.hl7": _UNSUPPORTED
        for name in (
            "client",
            "test_core-04",
            "test_mllp-01",
            "test_mllp-02",
            "test_parser-01",
            "test_parser-02",
            "test_parser-03",
            "test_parser-04",
            "test_validation-02",
            "test_validation-05",
        )
    },
    "linuxforhealth-hl7v2-fhir/Hl7CustomMessageTest.hl7": _UNSUPPORTED,
    # Parser tests whose MSH-9 is empty: nothing says what the message is.
    **{
        f"python-hl7/{name}.hl7": _NO_TYPE
        for name in (
            "test_accessor-01",
            "test_client-02",
            "test_client-08",
            "test_client-09",
            "test_construction-04",
            "test_parse",
        )
    },
    # Event-type and order tests with no PID: whose data it is cannot be told.
    **{
        f"linuxforhealth-hl7v2-fhir/{name}.hl7": _NO_PID.format("ADT")
        for name in (
            "HL7EventTypeFHIRConversionTest-01",
            "HL7EventTypeFHIRConversionTest-02",
            "HL7EventTypeFHIRConversionTest-03",
        )
    },
    **{
        f"linuxforhealth-hl7v2-fhir/Hl7ORMMessageTest-0{n}.hl7": _NO_PID.format("ORM")
        for n in (1, 2, 8)
    },
    "python-hl7/test_accessor-02.hl7": _NO_PID.format("ORU"),
    # Batch headers followed by segments with no MSH of their own.
    **{
        f"python-hl7/samples-{n:02d}.hl7": "MSH: the message does not start with an MSH segment"
        for n in (8, 17, 20)
    },
    # "MSH|^~\&|foo" then a line "bar": not a segment.
    "python-hl7/test_client-01.hl7": "segment 2: line 2 is not a segment",
}


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@pytest.mark.parametrize("path", FILES, ids=_name)
def test_converts_to_valid_r4_or_is_refused_for_a_listed_reason(path: Path) -> None:
    expected = REFUSED.get(_name(path))
    try:
        result = convert_payload(path.read_bytes(), CTX, PayloadFormat.HL7V2)
    except NormalizationError as exc:
        found = f"{exc.issues[0].location}: {exc.issues[0].diagnostics}"
        assert expected is not None, f"a new refusal: {found}"
        assert found.startswith(expected)
        return
    assert expected is None, f"converts now; take it off REFUSED ({expected})"
    get_fhir_model_class("Bundle").model_validate(result.bundle)


def test_the_list_of_refusals_names_only_files_that_exist() -> None:
    assert set(REFUSED) <= {_name(p) for p in FILES}
