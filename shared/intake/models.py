"""What a partner submits over HTTP, and what we answer once it is stored; the batch
uploads we issue, and what the drop stage decides about a dropped file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import InvalidUploadRequestError

__all__ = [
    "Admission",
    "AdmissionBasis",
    "IssuedUpload",
    "Receipt",
    "Submission",
    "Upload",
    "UploadRequest",
]


@dataclass(frozen=True, slots=True)
class Submission:
    """One HTTP submission, as the function adapter read it."""

    body: bytes
    content_type: str | None
    content_encoding: str | None = None
    idempotency_key: str | None = None
    mapping: str | None = None
    traceparent: str | None = None
    channel: str = "http"  # how it came: http, mllp or queue (on the journey, for operators)

    def __repr__(self) -> str:  # the body may be PHI
        return (
            f"Submission(bytes={len(self.body)}, content_type={self.content_type!r}, "
            f"mapping={self.mapping!r})"
        )


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer to a stored submission."""

    ingestion_id: str
    received: datetime
    duplicate: bool  # the same submission was stored before: nothing new was done
    raw_blob: str
    note: str = ""  # what the ACK adds to "stored" (say, a type stored but not converted)


class UploadRequest(BaseModel):
    """The body of ``POST /api/ingest/uploads``: nothing, or the file name to suggest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    filename: str | None = Field(default=None, max_length=1024)

    @classmethod
    def from_body(cls, body: bytes) -> UploadRequest:
        """Read a request body (empty: no name suggested).

        Raises:
            InvalidUploadRequestError: not a JSON object with at most a string ``filename``.
        """
        if not body.strip():
            return cls()
        try:
            return cls.model_validate_json(body)
        except ValidationError as exc:
            raise InvalidUploadRequestError(
                'the body must be empty or a JSON object {"filename": "<the file\'s name>"}'
            ) from exc


@dataclass(frozen=True, slots=True)
class Upload:
    """One batch upload we issued: the one blob name a partner may write, until when.

    The table row keeps the name's SHA-256 only (a partner may name a file after a
    patient), so ``name`` is empty when the record was read back from storage.
    """

    id: str
    partner: str
    name_sha256: str
    issued: datetime
    expires: datetime
    name: str = ""

    def __repr__(self) -> str:  # the name may hold a patient's name
        return f"Upload(id={self.id!r}, partner={self.partner!r}, expires={self.expires})"


@dataclass(frozen=True, slots=True)
class IssuedUpload:
    """What the upload route answers: where to PUT the file, and until when."""

    upload: Upload
    url: str  # a SAS URL: whoever holds it may write that one blob until it expires

    def __repr__(self) -> str:  # the URL is a credential
        return f"IssuedUpload({self.upload!r})"

    def to_json(self) -> dict[str, object]:
        """The route's answer body."""
        return {
            "id": self.upload.id,
            "url": self.url,
            "blob": self.upload.name,
            "expires": self.upload.expires.isoformat(),
            "method": "PUT",
            "headers": {"x-ms-blob-type": "BlockBlob"},
        }


class AdmissionBasis(StrEnum):
    """Why the drop stage takes (or refuses) a file as its folder's partner's."""

    UPLOAD = "upload"  # the name was issued to that partner and written in time
    FOLDER = "folder"  # the deployment trusts that partner's folder (direct drops)
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Admission:
    """The drop stage's decision about one dropped file, by ids only."""

    partner: str | None  # the partner the folder names; None: it names no registered one
    basis: AdmissionBasis
    upload_id: str | None = None
    reason: str = ""  # for a refusal: our words, no part of the file's name
