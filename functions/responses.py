"""HTTP answers every endpoint gives alike: FHIR OperationOutcomes for refusals (503s
with Retry-After), the caller's partner from ``X-API-Key`` with a role check, and a
request's query without the function key."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import azure.functions as func

from shared import wiring
from shared.platform.errors import StorageUnavailableError
from shared.platform.public_url import public_url as _public_url
from shared.platform.settings import Environment
from shared.security import AuthenticationError, Partner
from shared.security.audit import AccessRefusal
from shared.security.errors import SecurityUnavailableError
from shared.security.models import Role

FHIR_JSON = "application/fhir+json"
RETRY_AFTER_SECONDS = "5"
FUNCTION_KEY_HEADER = "x-functions-key"
FUNCTION_KEY_QUERY = "code"


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
        return forbidden(req, partner.id, f"this needs the {wanted} role", {"needed": wanted})
    return partner


def forbidden(
    req: func.HttpRequest, partner: str, text: str, details: dict[str, str] | None = None
) -> func.HttpResponse:
    """A 403 OperationOutcome, audited (every refusal leaves a trace)."""
    wiring.access_audit().refused(AccessRefusal.AUTHORIZATION, partner, _route(req), details)
    return outcome(403, "forbidden", text)


def _route(req: func.HttpRequest) -> str:
    """Method and path, for the audit trail: never the query (a function key may be there)."""
    return f"{req.method} {urlsplit(req.url).path}"[:300]


def public_url(req: func.HttpRequest) -> str:
    """The request's URL on our public origin: links never carry the caller's Host."""
    config = wiring.settings()
    development = config.environment is Environment.DEVELOPMENT
    return _public_url(req.url, config.public_origins, development=development)


def _key_in_query(req: func.HttpRequest) -> bool:
    """Whether ``?code=`` is the function key: the Functions host reads the key from the
    ``x-functions-key`` header when the request has one (even empty), else from
    ``code``, and hands the function the query as sent either way."""
    return FUNCTION_KEY_HEADER not in req.headers  # headers are case-insensitive


def query_params(req: func.HttpRequest) -> dict[str, list[str]]:
    """The request's query parameters, each with all its values, without the function
    key: ``code`` is a parameter (FHIR's ``code`` search) only when the key came in the
    header, so a key sent as ``?code=`` is never read as a search value or echoed."""
    query = parse_qs(urlsplit(req.url).query)
    if _key_in_query(req):
        query.pop(FUNCTION_KEY_QUERY, None)
    return query


def url_without_key(req: func.HttpRequest, url: str) -> str:
    """``url`` (the request's, as a caller may see it again: an export's ``request``)
    without ``?code=`` when that was the function key."""
    if not _key_in_query(req):
        return url
    parts = urlsplit(url)
    kept = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != FUNCTION_KEY_QUERY
    ]
    return urlunsplit(parts._replace(query=urlencode(kept)))
