"""GET /api/health: storage reachability and version, for probes and people; GET
/api/openapi.json: the HTTP API described as OpenAPI 3.0."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared import __version__, wiring
from shared.platform import ConfigurationError
from shared.platform.openapi import openapi_document

from .responses import public_url

bp = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """200 when every storage service answers, 503 otherwise; never reveals settings."""
    try:
        report = wiring.health()
    except ConfigurationError:
        log.error("health: settings invalid", extra={"stage": "health", "outcome": "config"})
        return func.HttpResponse(
            '{"status":"misconfigured"}', status_code=503, mimetype="application/json"
        )
    log.info("health: %s", report.status, extra={"stage": "health", "outcome": report.status})
    return func.HttpResponse(
        report.model_dump_json(),
        status_code=200 if report.healthy else 503,
        mimetype="application/json",
    )


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """The OpenAPI document, with this host's base URL as its server."""
    base = public_url(req).split("/openapi.json")[0]
    return func.HttpResponse(
        json.dumps(openapi_document(base, __version__)), mimetype="application/json"
    )
