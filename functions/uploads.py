"""POST /api/ingest/uploads: a partner (ingest role) asks to upload a batch file and gets a
short-lived URL that writes one blob in its own ingest-drop folder; the drop stage then
takes that file as the caller's. Partners need no role on the container."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared import wiring
from shared.intake.errors import SubmissionError
from shared.intake.models import UploadRequest
from shared.platform import StorageUnavailableError
from shared.security.models import Role

from .responses import FHIR_JSON, outcome, partner_with_role

bp = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)


@bp.route(route="ingest/uploads", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def ingest_upload(req: func.HttpRequest) -> func.HttpResponse:
    """201 with the upload's id, URL and expiry; 400 for a body that is not
    ``{"filename": ...}``; 503 with Retry-After when storage or the signing key is away."""
    partner = partner_with_role(req, Role.INGEST)
    if isinstance(partner, func.HttpResponse):
        return partner
    try:
        request = UploadRequest.from_body(req.get_body())
        issued = wiring.uploads().issue(partner.id, request.filename)
    except SubmissionError as exc:
        return func.HttpResponse(
            json.dumps(exc.to_operation_outcome()), status_code=exc.status, mimetype=FHIR_JSON
        )
    except StorageUnavailableError:
        log.warning("upload: storage unavailable", extra={"stage": "upload", "outcome": "retry"})
        return outcome(503, "transient", "storage is unavailable; ask again later")
    return func.HttpResponse(
        json.dumps(issued.to_json()),
        status_code=201,
        mimetype="application/json",
        headers={"Cache-Control": "no-store"},  # the URL is a credential
    )
