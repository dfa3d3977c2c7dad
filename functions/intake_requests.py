"""Queue intake for internal producers: ``intake-requests`` messages submitted as their
partner; GET /api/schemas/intake-request publishes the message's JSON Schema."""

from __future__ import annotations

import json

import azure.functions as func

from shared import wiring
from shared.intake.queue_requests import intake_request_schema
from shared.platform import Queue, Setting

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(
    arg_name="msg", queue_name=Queue.INTAKE_REQUESTS.value, connection=Setting.STORAGE.value
)
def intake_request(msg: func.QueueMessage) -> None:
    """Submit one request; one we cannot accept goes to intake-requests-poison with a
    report at once; a storage failure raises, so the queue retries it."""
    wiring.queue_intake().handle(msg.get_body(), msg.id or "", msg.dequeue_count or 1)


@bp.route(route="schemas/intake-request", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def intake_request_schema_document(req: func.HttpRequest) -> func.HttpResponse:
    """The JSON Schema of an intake-requests message (also docs/schemas/)."""
    return func.HttpResponse(
        json.dumps(intake_request_schema(), indent=2), mimetype="application/schema+json"
    )
