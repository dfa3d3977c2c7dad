"""HTTP ingestion: POST /api/ingest stores a partner's payload; GET /api/ingest/{id} tells
what happened to it. Function keys stay on as the outer layer; partners sign in with
X-API-Key or an Entra ID token and need the ingest role. HL7 callers that accept ER7 get
an HL7 ACK instead of JSON: the commit ACK when stored (AA, or CA in enhanced mode), and
the application ACK from GET /api/ingest/{id}/ack once normalization and consent are done."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared import wiring
from shared.intake.acks import commit_ack
from shared.intake.errors import SubmissionError
from shared.intake.hl7_ack import ACK_CONTENT_TYPE, encode_ack
from shared.intake.hl7_header import MessageHeader, read_header
from shared.intake.models import Submission
from shared.platform import StorageUnavailableError
from shared.platform.telemetry import Hop
from shared.security.models import Role

from .responses import FHIR_JSON, RETRY_AFTER_SECONDS, outcome, partner_with_role

bp = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)


def _ack(
    ack: str, header: MessageHeader | None, status: int, headers: dict[str, str] | None
) -> func.HttpResponse:
    """An HL7 ACK as the response, in the message's character set."""
    return func.HttpResponse(
        encode_ack(ack, header), status_code=status, mimetype=ACK_CONTENT_TYPE, headers=headers
    )


@bp.route(route="ingest", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def ingest(req: func.HttpRequest) -> func.HttpResponse:
    """202 with the ingestion id once the payload is stored; 4xx OperationOutcome (or an
    AE ACK) when refused; 409 (the same submission being stored now) and 503 (storage
    down) with Retry-After (an AR ACK: resend unchanged). One span, the ingestion's trace
    root (or the child of the caller's traceparent)."""
    caller = req.headers.get("traceparent")
    with wiring.request_span("ingest", caller, "POST", "/api/ingest") as hop:
        response = _ingest(req, hop)
        hop.status_code = response.status_code
        return response


def _ingest(req: func.HttpRequest, hop: Hop) -> func.HttpResponse:
    wants_ack = ACK_CONTENT_TYPE in (req.headers.get("accept") or "")
    body = req.get_body()
    encoding = req.headers.get("content-encoding")
    header = read_header(body, encoding) if wants_ack else None
    partner = partner_with_role(req, Role.INGEST)
    if isinstance(partner, func.HttpResponse):
        return partner
    hop.partner = partner.id
    try:
        receipt = wiring.submissions().submit(
            partner,
            Submission(
                body=body,
                content_type=req.headers.get("content-type"),
                content_encoding=encoding,
                idempotency_key=req.headers.get("idempotency-key"),
                mapping=req.params.get("mapping"),
                traceparent=req.headers.get("traceparent"),
            ),
        )
    except SubmissionError as exc:
        retry = {"Retry-After": str(exc.retry_after)} if exc.retryable else None
        if wants_ack:
            ack = commit_ack(body, header, refused=exc, content_encoding=encoding)
            return _ack(ack, header, exc.status, retry)
        return func.HttpResponse(
            json.dumps(exc.to_operation_outcome()),
            status_code=exc.status,
            mimetype=FHIR_JSON,
            headers=retry,
        )
    except StorageUnavailableError:
        log.warning("ingest: storage unavailable", extra={"stage": "ingest", "outcome": "retry"})
        if wants_ack:
            ack = commit_ack(body, header, content_encoding=encoding)
            return _ack(ack, header, 503, {"Retry-After": RETRY_AFTER_SECONDS})
        return outcome(503, "transient", "storage is unavailable; resend later")
    hop.correlation_id = receipt.ingestion_id
    hop.outcome = "duplicate" if receipt.duplicate else "stored"
    location = f"/api/ingest/{receipt.ingestion_id}"
    if wants_ack:
        ack = commit_ack(body, header, receipt=receipt, content_encoding=encoding)
        return _ack(ack, header, 202, {"Location": location})
    return func.HttpResponse(
        json.dumps(
            {
                "id": receipt.ingestion_id,
                "status": "accepted",
                "duplicate": receipt.duplicate,
                "received": receipt.received.isoformat(),
            }
        ),
        status_code=202,
        mimetype="application/json",
        headers={"Location": location},
    )


@bp.route(route="ingest/{id:guid}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def ingestion_status(req: func.HttpRequest) -> func.HttpResponse:
    """The journey of one of the caller's ingestions; 404 for any other id."""
    partner = partner_with_role(req, Role.INGEST)
    if isinstance(partner, func.HttpResponse):
        return partner
    try:
        journey = wiring.submissions().status(partner.id, req.route_params["id"].lower())
    except StorageUnavailableError:
        return outcome(503, "transient", "storage is unavailable; retry later")
    if journey is None:
        return outcome(404, "not-found", "no ingestion with this id for this partner")
    return func.HttpResponse(json.dumps(journey), mimetype="application/json")


@bp.route(route="ingest/{id:guid}/ack", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def ingestion_ack(req: func.HttpRequest) -> func.HttpResponse:
    """The application ACK (AA or AE) of one of the caller's HL7 v2 ingestions once
    normalization and consent are done; 202 with Retry-After before; 404 for any other id."""
    partner = partner_with_role(req, Role.INGEST)
    if isinstance(partner, func.HttpResponse):
        return partner
    try:
        known, ack = wiring.submissions().application_ack(
            partner.id, req.route_params["id"].lower()
        )
    except StorageUnavailableError:
        return outcome(503, "transient", "storage is unavailable; retry later")
    if not known:
        return outcome(404, "not-found", "no HL7 v2 ingestion with this id for this partner")
    if ack is None:
        pending = {"severity": "information", "code": "incomplete", "diagnostics": "not yet"}
        return func.HttpResponse(
            json.dumps({"resourceType": "OperationOutcome", "issue": [pending]}),
            status_code=202,
            mimetype=FHIR_JSON,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    return func.HttpResponse(ack, mimetype=ACK_CONTENT_TYPE)
