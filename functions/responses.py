"""HTTP answers every endpoint gives alike: FHIR OperationOutcomes for refusals (503s
with Retry-After), and the caller's partner from ``X-API-Key`` with a role check."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import azure.functions as func

from shared.platform import wiring
from shared.platform.errors import StorageUnavailableError
from shared.platform.public_url import public_url as _public_url
from shared.platform.settings import Environment
from shared.security import AuthenticationError, Partner
from shared.security.audit import AccessRefusal
from shared.security.errors import SecurityUnavailableError
from shared.security.models import Role

FHIR_JSON = "application/fhir+json"
RETRY_AFTER_SECONDS = "5"


def outcome(status: int, code: str, text: str) -> func.HttpResponse:
    """An OperationOutcome with one error issue; a 503 says when to come back."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
    return func.HttpResponse(
        json.dumps(body), status_code=status, mimetype=FHIR_JSON, headers=headers
    )


def partner_with_role(req: func.HttpRequest, *roles: Role) -> Partner | func.HttpResponse:
    """The calling partner (Entra ID bearer token or X-API-Key) if it holds one of
    ``roles``; else the 401, 403 or 503 answer."""
    authenticator = wiring.authenticator()
    try:
        partner = authenticator.authenticate(
            req.headers.get("authorization"), req.headers.get("x-api-key")
        )
    except AuthenticationError as exc:
        refused = outcome(401, "login", str(exc))
        refused.headers["WWW-Authenticate"] = ", ".join(authenticator.schemes)
        wiring.access_audit().refused(
            AccessRefusal.AUTHENTICATION, exc.credential, _route(req), authenticated=False
        )
        return refused
    except (SecurityUnavailableError, StorageUnavailableError):
        return outcome(503, "transient", "credentials cannot be checked now; retry later")
    if roles and not partner.roles & set(roles):
        wanted = " or ".join(r.value for r in roles)
        wiring.access_audit().refused(
            AccessRefusal.AUTHORIZATION, partner.id, _route(req), {"needed": wanted}
        )
        return outcome(403, "forbidden", f"this needs the {wanted} role")
    return partner


def _route(req: func.HttpRequest) -> str:
    """Method and path, for the audit trail: never the query (a function key may be there)."""
    return f"{req.method} {urlsplit(req.url).path}"[:300]


def public_url(req: func.HttpRequest) -> str:
    """The request's URL on our public origin: links never carry the caller's Host."""
    config = wiring.settings()
    development = config.environment is Environment.DEVELOPMENT
    return _public_url(req.url, config.public_origins, development=development)
