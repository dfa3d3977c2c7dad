"""Why a submission is refused; each maps to an HTTP status and an OperationOutcome.

IntakeError
└── SubmissionError(status, code)     permanent: the caller must change the request
    ├── UnauthenticatedError          401
    ├── ForbiddenError                403
    ├── EmptyBodyError                400
    ├── UnknownMappingError           400
    ├── InvalidHeaderError            400
    ├── MissingHeaderError            400 (an HL7 v2 message without MSH, MSH-9 or MSH-10)
    ├── InvalidDocumentError          400 (XML that is unsafe, malformed or not a C-CDA)
    ├── SubmissionInProgressError     409 retryable: the same submission is being stored now
    ├── InvalidUploadRequestError     400 (POST /api/ingest/uploads)
    ├── InvalidIntakeRequestError     400 (an intake-requests queue message)
    ├── UnsupportedMediaTypeError     415
    ├── UnsupportedMessageTypeError   422 (an HL7 v2 type we do not convert: ACK, QBP, ...)
    └── PayloadTooLargeError          413 (also a decompression bomb)
"""

from __future__ import annotations

from typing import Any

from shared.platform.errors import IntakeError

__all__ = [
    "EmptyBodyError",
    "ForbiddenError",
    "InvalidDocumentError",
    "InvalidHeaderError",
    "InvalidIntakeRequestError",
    "InvalidUploadRequestError",
    "MissingHeaderError",
    "PayloadTooLargeError",
    "SubmissionError",
    "SubmissionInProgressError",
    "UnauthenticatedError",
    "UnknownMappingError",
    "UnsupportedMediaTypeError",
    "UnsupportedMessageTypeError",
]


class SubmissionError(IntakeError):
    """A submission we refuse; nothing was stored."""

    status = 400
    code = "invalid"
    hl7_code = "207"  # HL7 table 0357, for the ACK's ERR-3: application internal error
    retryable = False  # True: the same request may succeed later unchanged
    retry_after = 1  # seconds, for Retry-After, when retryable

    def __init__(self, diagnostics: str, location: str | None = None) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.location = location

    def to_operation_outcome(self) -> dict[str, Any]:
        """The OperationOutcome for the response body."""
        issue: dict[str, Any] = {
            "severity": "error",
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.location:
            issue["location"] = [self.location]
        return {"resourceType": "OperationOutcome", "issue": [issue]}


class UnauthenticatedError(SubmissionError):
    """No valid partner credentials."""

    status, code = 401, "login"


class ForbiddenError(SubmissionError):
    """The partner may not do this."""

    status, code = 403, "forbidden"


class EmptyBodyError(SubmissionError):
    """The request has no body."""

    code = "required"


class UnknownMappingError(SubmissionError):
    """A CSV submission names no mapping, or one we do not have."""

    code = "value"


class UnsupportedMediaTypeError(SubmissionError):
    """The Content-Type (or Content-Encoding) is not one we take."""

    status, code = 415, "not-supported"


class UnsupportedMessageTypeError(SubmissionError):
    """An HL7 v2 message of a type this service does not convert: refused before it is
    stored, so the sender gets an AE rather than an AA for a message nothing will use."""

    status, code, hl7_code = 422, "not-supported", "200"  # unsupported message type


class InvalidHeaderError(SubmissionError):
    """A request header we read is malformed (say, an Idempotency-Key with control bytes)."""

    code = "value"


class MissingHeaderError(SubmissionError):
    """An HL7 v2 message that does not start with an MSH, whose MSH-9 or MSH-10 is empty
    or cannot be echoed, or (over MLLP) a frame holding more than one message: refused at
    the door, where its ACK can still say so."""

    code = "structure"

    def __init__(self, diagnostics: str, location: str | None = None, hl7_code: str = "") -> None:
        super().__init__(diagnostics, location)
        # 100 segment sequence error without an MSH, else 101 required field missing.
        self.hl7_code = hl7_code or ("100" if location == "MSH" else "101")


class InvalidDocumentError(SubmissionError):
    """A C-CDA document refused at the door: a DTD or entity declaration, not well-formed,
    over the size, depth or element limits, or not a ClinicalDocument."""

    code = "structure"

    def __init__(self, diagnostics: str, location: str | None = None, code: str = "") -> None:
        super().__init__(diagnostics, location)
        self.code = code or self.code


class SubmissionInProgressError(SubmissionError):
    """The same submission (Idempotency-Key or content) is being stored by another request
    right now: resend in ``retry_after`` seconds, and that resend gets its ingestion."""

    status, code, retryable = 409, "conflict", True

    def __init__(self, diagnostics: str, location: str | None = None, retry_after: int = 1) -> None:
        super().__init__(diagnostics, location)
        self.retry_after = max(1, retry_after)


class InvalidUploadRequestError(SubmissionError):
    """An upload request's body is not a JSON object with at most a ``filename``."""

    code = "structure"


class InvalidIntakeRequestError(SubmissionError):
    """An ``intake-requests`` message that is not a valid request, or names a payload we
    cannot read (bad base64, no such blob)."""

    code = "structure"

    def __init__(self, diagnostics: str, location: str | None = None, code: str = "") -> None:
        super().__init__(diagnostics, location)
        if code:
            self.code = code


class PayloadTooLargeError(SubmissionError):
    """Over the size limit, before or after decompression."""

    status, code = 413, "too-costly"
