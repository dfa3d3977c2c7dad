"""The intake-requests message: the published schema is the model's, and an independent
JSON Schema validator agrees with the model on what is a valid request."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
from pydantic import ValidationError

from shared.intake.queue_requests import IntakeRequest, intake_request_schema
from tests.support.hostproc import REPO

PUBLISHED = REPO / "docs" / "schemas" / "intake-request.schema.json"
HL7 = "x-application/hl7-v2+er7"


def test_the_published_schema_is_the_one_the_code_validates_with() -> None:
    assert json.loads(PUBLISHED.read_text()) == intake_request_schema(), (
        "regenerate docs/schemas/intake-request.schema.json from intake_request_schema()"
    )


@pytest.mark.parametrize(
    ("message", "valid"),
    [
        ({"partner": "lab-a", "content_type": HL7, "payload": "MSH|^~\\&|..."}, True),
        ({"partner": "lab-a", "content_type": HL7, "payload_base64": "TVNI"}, True),
        ({"partner": "lab-a", "content_type": HL7, "blob": "lab-a/2026/03/01/m.hl7"}, True),
        (
            {
                "version": 1,
                "partner": "lab-a",
                "content_type": HL7,
                "payload": "x",
                "idempotency_key": "k-1",
                "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
            },
            True,
        ),
        ({"partner": "lab-a", "content_type": HL7}, False),  # no payload
        ({"partner": "lab-a", "content_type": HL7, "payload": "x", "blob": "lab-a/x"}, False),
        ({"partner": "Lab A", "content_type": HL7, "payload": "x"}, False),
        ({"partner": "lab-a", "content_type": HL7, "payload": "x", "extra": 1}, False),
        ({"version": 2, "partner": "lab-a", "content_type": HL7, "payload": "x"}, False),
        ({"partner": "lab-a", "content_type": "", "payload": "x"}, False),
        ({"partner": "lab-a", "content_type": HL7, "payload": "x", "blob": None}, False),
    ],
)
def test_schema_and_model_agree(message: dict[str, object], valid: bool) -> None:
    validator = jsonschema_rs.validator_for(json.loads(PUBLISHED.read_text()))
    assert validator.is_valid(message) is valid
    if valid:
        IntakeRequest.model_validate(message)
    else:
        with pytest.raises(ValidationError):
            IntakeRequest.model_validate(message)


@pytest.mark.parametrize(
    "blob", ["lab-b/secret.hl7", "lab-a/../lab-b/secret.hl7", "lab-a//x", "lab-a/./x"]
)
def test_a_blob_outside_the_partners_folder_is_refused_by_the_model(blob: str) -> None:
    # "lab-a/../lab-b/x" passed once: the HTTP stack collapses dot segments on the way.
    with pytest.raises(ValidationError, match="partner's folder"):
        IntakeRequest.model_validate({"partner": "lab-a", "content_type": HL7, "blob": blob})


def test_its_repr_never_shows_the_payload() -> None:
    request = IntakeRequest(partner="lab-a", content_type=HL7, payload="PID|1||MRN-SECRET")
    assert "MRN-SECRET" not in repr(request)
