"""Webhook subscriptions over HTTP: ``/api/subscriptions`` (POST, GET), ``/{id}`` (GET,
PATCH, DELETE), ``/{id}/$rotate-secret`` (POST) and ``/{id}/$replay`` (POST, admin).

A partner with the read or population role manages its own subscriptions; the admin role
any. Criteria on every patient's data need the population role (``notify/subscriptions``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import azure.functions as func

from shared import wiring
from shared.notify import (
    SubscriptionChange,
    SubscriptionConflictError,
    SubscriptionForbiddenError,
    SubscriptionInvalidError,
    SubscriptionNotFoundError,
    SubscriptionStatus,
    replay_dead_letters,
)
from shared.platform import StorageUnavailableError
from shared.platform.errors import ConfigurationError
from shared.platform.secrets import SecretsUnavailableError
from shared.security.models import Partner, Role

from .responses import forbidden, outcome, partner_with_role, public_url

bp = func.Blueprint()  # type: ignore[no-untyped-call]
_JSON = "application/json"


def _json(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype=_JSON, headers=headers)


def _answer(
    req: func.HttpRequest, work: Callable[[Partner], func.HttpResponse], *roles: Role
) -> func.HttpResponse:
    """Authenticate, run, and map our errors to OperationOutcomes."""
    caller = partner_with_role(req, *(roles or (Role.READ, Role.POPULATION, Role.ADMIN)))
    if isinstance(caller, func.HttpResponse):
        return caller
    try:
        return work(caller)
    except SubscriptionInvalidError as exc:
        return outcome(400, "invalid", str(exc))
    except SubscriptionNotFoundError as exc:
        return outcome(404, "not-found", str(exc))
    except SubscriptionForbiddenError as exc:
        return forbidden(req, caller.id, str(exc))
    except (StorageUnavailableError, SecretsUnavailableError, SubscriptionConflictError):
        return outcome(503, "transient", "storage or Key Vault is unavailable; try again later")
    except ConfigurationError as exc:
        return outcome(500, "exception", str(exc))


def _base_url(req: func.HttpRequest) -> str:
    return f"{public_url(req).split('/api/')[0]}/api/fhir"


def _query(req: func.HttpRequest, name: str) -> str | None:
    values = parse_qs(urlsplit(req.url).query).get(name)
    return values[-1] if values else None


@bp.route(route="subscriptions", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def subscription_create(req: func.HttpRequest) -> func.HttpResponse:
    """Create a subscription; the answer carries its signing secret, this once."""

    def work(caller: Partner) -> func.HttpResponse:
        change = SubscriptionChange.read(req.get_body())
        sub, secret = wiring.subscription_service().create(caller, change, _base_url(req))
        location = f"{public_url(req).split('?')[0].rstrip('/')}/{sub.id}"
        return _json({**sub.public(), "secret": secret}, 201, {"Location": location})

    return _answer(req, work)


@bp.route(route="subscriptions", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def subscription_list(req: func.HttpRequest) -> func.HttpResponse:
    """The caller's subscriptions (everyone's for the admin role)."""
    return _answer(
        req,
        lambda caller: _json(
            {"subscriptions": [s.public() for s in wiring.subscription_service().list(caller)]}
        ),
    )


@bp.route(
    route="subscriptions/{id}",
    methods=["GET", "PATCH", "DELETE"],
    auth_level=func.AuthLevel.FUNCTION,
)
def subscription_one(req: func.HttpRequest) -> func.HttpResponse:
    """Read, change (``status: active`` re-enables) or delete one subscription."""
    ident = req.route_params.get("id", "")
    service = wiring.subscription_service()

    def work(caller: Partner) -> func.HttpResponse:
        if req.method == "DELETE":
            service.delete(caller, ident)
            return func.HttpResponse(status_code=204)
        if req.method == "PATCH":
            change = SubscriptionChange.read(req.get_body())
            return _json(service.update(caller, ident, change).public())
        return _json(service.describe(caller, ident))

    return _answer(req, work)


@bp.route(
    route="subscriptions/{id}/$rotate-secret", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
def subscription_rotate(req: func.HttpRequest) -> func.HttpResponse:
    """A new signing secret; the old one keeps signing for ``overlapHours`` (default 24)."""

    def work(caller: Partner) -> func.HttpResponse:
        try:
            hours = float(_query(req, "overlapHours") or 24)
        except ValueError as exc:
            raise SubscriptionInvalidError("overlapHours: a number of hours") from exc
        if not 0 <= hours <= 168:  # also refuses nan and inf
            raise SubscriptionInvalidError("overlapHours: between 0 and 168")
        sub, secret = wiring.subscription_service().rotate(
            caller, req.route_params.get("id", ""), timedelta(hours=hours)
        )
        return _json({**sub.public(), "secret": secret})

    return _answer(req, work)


@bp.route(route="subscriptions/{id}/$replay", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def subscription_replay(req: func.HttpRequest) -> func.HttpResponse:
    """Re-deliver the subscription's dead letters (``since``: dead-lettered at or after)."""

    def work(caller: Partner) -> func.HttpResponse:
        sub = wiring.subscription_service().get(caller, req.route_params.get("id", ""))
        if sub.status is SubscriptionStatus.OFF:
            return outcome(409, "conflict", "the subscription is off: PATCH status active first")
        since_text = _query(req, "since")
        try:
            since = (
                datetime.fromisoformat(since_text.replace("Z", "+00:00")) if since_text else None
            )
        except ValueError as exc:
            raise SubscriptionInvalidError("since: an ISO 8601 instant with offset") from exc
        if since is not None and since.tzinfo is None:
            raise SubscriptionInvalidError("since: give the instant's offset (Z or +hh:mm)")
        queued = replay_dead_letters(
            sub.id, wiring.dead_letters(), wiring.deliveries(), wiring.envelope_sender(), since
        )
        wiring.subscription_service().note_replay(caller, sub.id, queued)
        return _json({"subscription": sub.id, "queued": queued}, 202)

    return _answer(req, work, Role.ADMIN)
