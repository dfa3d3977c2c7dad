"""Internal producers submit through the ``intake-requests`` queue: a JSON message naming
the partner, the content type and the payload (inline, or a blob in ``intake-requests``),
run through the same submission path as HTTP (idempotency, status, audit).

The producer's identity is the queue's own access control (Storage Queue Data Message
Sender on that queue); the partner it names must exist, have the ingest role and allow
queue intake. A message we cannot accept is moved to ``intake-requests-poison`` at once,
with the reason (an OperationOutcome, never the payload) on a report blob; storage being
down, or the same submission being stored by another message right now, raises, so the
queue retries the message; on its last attempt the report is written first, so a message
the runtime parks in the poison queue is explained too.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from azure.core.exceptions import AzureError, ResourceNotFoundError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.pipeline.runner import MAX_DEQUEUE_COUNT
from shared.platform.errors import StorageUnavailableError
from shared.platform.names import Container, Queue, poison_queue
from shared.platform.storage import StorageClients
from shared.platform.telemetry import Hop, stage_span
from shared.security.models import PARTNER_ID_PATTERN, Role
from shared.security.partners import PartnerLookup

from .errors import (
    ForbiddenError,
    InvalidIntakeRequestError,
    PayloadTooLargeError,
    SubmissionError,
    SubmissionInProgressError,
)
from .models import Receipt, Submission
from .submissions import Submitter

__all__ = ["IntakeRequest", "QueueIntake", "QueueOutcome", "intake_request_schema"]

log = logging.getLogger(__name__)
SCHEMA_ID = "https://github.com/fhir-intake/fhir-intake/docs/schemas/intake-request.schema.json"
_MAX_MESSAGE = 64 * 1024  # a storage queue message, before base64


class IntakeRequest(BaseModel):
    """One submission from an internal producer (``docs/schemas/intake-request.schema.json``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = Field(1, description="The message format's version.")
    partner: str = Field(
        pattern=PARTNER_ID_PATTERN, description="The partner the data is submitted as."
    )
    content_type: str = Field(
        min_length=1,
        max_length=100,
        description="As for POST /api/ingest: x-application/hl7-v2+er7, application/fhir+json, "
        "application/fhir+ndjson, text/csv (with mapping) or application/cda+xml.",
    )
    payload: str | None = Field(None, description="The payload inline, as text.")
    payload_base64: str | None = Field(None, description="The payload inline, base64.")
    blob: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        pattern=r"^[a-z0-9][a-z0-9-]{1,62}/[^\x00-\x1f]+$",
        description="Instead of an inline payload: a blob in the intake-requests container, "
        "under the partner's folder ({partner}/...).",
    )
    mapping: str | None = Field(None, max_length=64, description="CSV mapping name.")
    idempotency_key: str | None = Field(
        None, max_length=255, description="As the Idempotency-Key header: a resend is one."
    )
    traceparent: str | None = Field(None, max_length=55, description="W3C trace context.")

    @model_validator(mode="after")
    def _one_payload(self) -> IntakeRequest:
        given = [x for x in (self.payload, self.payload_base64, self.blob) if x is not None]
        named = {"payload", "payload_base64", "blob"} & self.model_fields_set
        if len(given) != 1 or len(named) != 1:  # as the schema's oneOf: a null counts too
            raise ValueError("give exactly one of payload, payload_base64 and blob")
        if self.blob is not None and (
            not self.blob.startswith(f"{self.partner}/")
            or any(part in ("", ".", "..") for part in self.blob.split("/"))
        ):
            raise ValueError("blob must lie in the partner's folder: {partner}/... (no . or ..)")
        return self

    def __repr__(self) -> str:  # the payload is PHI
        return f"IntakeRequest(partner={self.partner!r}, content_type={self.content_type!r})"


def intake_request_schema() -> dict[str, Any]:
    """The published JSON Schema of an intake request (generated from the model)."""
    schema = IntakeRequest.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "oneOf": [{"required": [name]} for name in ("payload", "payload_base64", "blob")],
        "description": "A submission an internal producer puts on the intake-requests queue "
        "(base64-encoded JSON, as every queue the Function App reads). Exactly one of "
        "payload, payload_base64 and blob.",
    }


@dataclass(frozen=True, slots=True)
class QueueOutcome:
    """What became of one queue message (ids only)."""

    accepted: bool
    ingestion_id: str | None = None
    report: str | None = None  # the report blob of a refused message


class QueueIntake:
    """Runs ``intake-requests`` messages through the submission service."""

    def __init__(
        self, clients: StorageClients, submissions: Submitter, partners: PartnerLookup
    ) -> None:
        self._clients = clients
        self._submissions = submissions
        self._partners = partners

    def handle(self, body: bytes, message_id: str, attempt: int = 1) -> QueueOutcome:
        """Submit one message (``attempt`` of ``MAX_DEQUEUE_COUNT``), or move it to the
        poison queue with a report.

        Raises:
            StorageUnavailableError, SubmissionInProgressError: retry later; the queue
                retries the message (on the last attempt, after writing its report).
        """
        try:
            return self._handle(body, message_id, attempt)
        except (StorageUnavailableError, SubmissionInProgressError) as exc:
            if attempt >= MAX_DEQUEUE_COUNT:
                self._report_last_attempt(message_id, type(exc).__name__, attempt)
            raise

    def _handle(self, body: bytes, message_id: str, attempt: int) -> QueueOutcome:
        partner_id = "-"
        try:
            request = _parse(body)
            partner_id = request.partner
            refused: SubmissionError | None = None
            # The ingestion's trace starts here, as the producer's child when it sent one.
            with stage_span(
                "ingest", Queue.INTAKE_REQUESTS, attempt, traceparent=request.traceparent
            ) as hop:
                try:
                    receipt = self._submit(request, hop)
                except SubmissionError as exc:  # the producer's to fix: refused, not failed
                    hop.outcome, refused = ("retry" if exc.retryable else "refused"), exc
                else:
                    hop.correlation_id = receipt.ingestion_id
                    hop.outcome = "duplicate" if receipt.duplicate else "stored"
            if refused is not None:
                raise refused
        except SubmissionError as exc:
            if exc.retryable:
                raise
            return self._refuse(body, message_id, partner_id, exc)
        log.info(
            "intake-requests: submitted",
            extra={
                "stage": "ingest",
                "partner": partner_id,
                "correlation_id": receipt.ingestion_id,
                "outcome": "duplicate" if receipt.duplicate else "stored",
            },
        )
        return QueueOutcome(True, receipt.ingestion_id)

    def _submit(self, request: IntakeRequest, hop: Hop) -> Receipt:
        partner = self._partners.get(request.partner)
        if partner is None or Role.INGEST not in partner.roles:
            raise ForbiddenError("the partner does not exist or may not submit data")
        hop.partner = partner.id  # only a registered partner's id goes into telemetry
        if not partner.queue_intake:
            raise ForbiddenError("the partner does not allow queue submission")
        return self._submissions.submit(
            partner,
            Submission(
                body=self._payload(request),
                content_type=request.content_type,
                idempotency_key=request.idempotency_key,
                mapping=request.mapping,
                traceparent=request.traceparent,
                channel="queue",
            ),
        )

    def _payload(self, request: IntakeRequest) -> bytes:
        if request.payload is not None:
            return request.payload.encode()
        if request.payload_base64 is not None:
            try:
                return base64.b64decode(request.payload_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidIntakeRequestError(
                    "payload_base64 is not valid base64", "payload_base64", "value"
                ) from exc
        assert request.blob is not None
        blob = self._clients.container(Container.INTAKE_REQUESTS).get_blob_client(request.blob)
        try:
            return blob.download_blob().readall()
        except ResourceNotFoundError as exc:
            raise InvalidIntakeRequestError(
                "no such blob in intake-requests", "blob", "not-found"
            ) from exc
        except AzureError as exc:
            raise StorageUnavailableError(f"reading a request blob: {type(exc).__name__}") from exc

    def _report_last_attempt(self, message_id: str, error: str, attempt: int) -> None:
        """The report of a message the runtime is about to park in the poison queue (its
        last attempt failed too); best effort, since storage may be what failed."""
        refused = InvalidIntakeRequestError(
            f"attempt {attempt} failed ({error}); the runtime keeps the message in "
            f"{poison_queue(Queue.INTAKE_REQUESTS)}: 'intake replay intake-requests' sends "
            "it back once storage is healthy",
            code="transient",
        )
        with contextlib.suppress(StorageUnavailableError):
            self._write_report(message_id, "-", refused)

    def _refuse(
        self,
        body: bytes,
        message_id: str,
        partner: str,
        refused: SubmissionError,
    ) -> QueueOutcome:
        """Report why, then park the message in the poison queue (report first: a crash
        in between leaves the message to be retried and refused again, never unexplained)."""
        name = self._write_report(message_id, partner, refused)
        try:
            self._clients.queue_client(poison_queue(Queue.INTAKE_REQUESTS)).send_message(body)
        except AzureError as exc:
            raise StorageUnavailableError(f"refusing a request: {type(exc).__name__}") from exc
        log.warning(
            "intake-requests: refused",
            extra={"stage": "ingest", "partner": partner, "outcome": "refused"},
        )
        return QueueOutcome(False, report=name)

    def _write_report(self, message_id: str, partner: str, refused: SubmissionError) -> str:
        """The report blob of a refused message: ids and the OperationOutcome only."""
        now = datetime.now(UTC)
        safe_id = "".join(c for c in message_id if c.isalnum() or c == "-")[:64] or "unknown"
        name = f"{Queue.INTAKE_REQUESTS.value}/{now:%Y/%m/%d}/{safe_id}.json"
        report = {
            "message_id": safe_id,
            "partner": partner,
            "refused": now.isoformat(),
            "poison_queue": poison_queue(Queue.INTAKE_REQUESTS),
            "outcome": refused.to_operation_outcome(),
        }
        try:
            self._clients.container(Container.REPORTS).upload_blob(
                name, json.dumps(report, indent=2).encode(), overwrite=True
            )
        except AzureError as exc:
            raise StorageUnavailableError(f"reporting a request: {type(exc).__name__}") from exc
        return name


def _parse(body: bytes) -> IntakeRequest:
    if len(body) > _MAX_MESSAGE:
        raise PayloadTooLargeError(f"the message is over {_MAX_MESSAGE} bytes")
    try:
        return IntakeRequest.model_validate_json(body)
    except ValidationError as exc:
        where = sorted({".".join(str(p) for p in e["loc"]) or "(message)" for e in exc.errors()})
        # Field names and the kind of problem only: the values may be PHI.
        kinds = sorted({str(e["type"]) for e in exc.errors()})
        raise InvalidIntakeRequestError(
            f"not a valid intake request ({', '.join(kinds)} at {', '.join(where)}); see "
            "GET /api/schemas/intake-request",
            where[0],
        ) from exc
