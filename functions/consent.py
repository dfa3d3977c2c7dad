"""Consent: the consent-check queue stage, and decisions on request over HTTP
(``POST /api/consent/$evaluate`` with FHIR Parameters; CDS Hooks discovery and
``patient-consent-consult``). Callers need an API key with the read or admin role."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from shared import wiring
from shared.consent import Actor, ConsentInputError, ConsentUnavailableError
from shared.consent.actors import partner_actor
from shared.consent.cds_hooks import SERVICE, decision_cards, read_hook_request
from shared.consent.errors import QuestionForbiddenError
from shared.consent.inputs import validate_resource
from shared.consent.parameters import decision_parameters, read_evaluate_parameters
from shared.consent.resources import describe_resource
from shared.platform import Queue, Setting, StorageUnavailableError
from shared.security import Partner
from shared.security.audit import AccessRefusal
from shared.security.models import Role

from .queue_stages import run_stage
from .responses import FHIR_JSON, outcome, partner_with_role, public_url

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(
    arg_name="msg", queue_name=Queue.CONSENT_CHECK.value, connection=Setting.STORAGE.value
)
def consent_check(msg: func.QueueMessage) -> None:
    """Decide a normalized Bundle; an unanswered consent index raises, so the queue
    retries and nothing passes unchecked."""
    run_stage(msg, Queue.CONSENT_CHECK)


def _decide(
    req: func.HttpRequest, answer: Callable[[Any, Partner], tuple[Any, str]]
) -> func.HttpResponse:
    """Authenticate, parse, check the question, decide; every refusal is an
    OperationOutcome, and a refused question is audited."""
    try:
        partner = partner_with_role(req, Role.READ, Role.ADMIN)
        if isinstance(partner, func.HttpResponse):
            return partner
        try:
            body = json.loads(req.get_body() or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return outcome(400, "structure", f"the body is not JSON: {exc}")
        except RecursionError:
            return outcome(400, "too-costly", "the body is nested too deeply")
        try:
            result, mimetype = answer(body, partner)
        except QuestionForbiddenError as exc:
            route = f"POST {urlsplit(req.url).path}"
            wiring.access_audit().refused(AccessRefusal.QUESTION, partner.id, route)
            return outcome(403, "forbidden", str(exc))
    except ConsentInputError as exc:
        return func.HttpResponse(
            json.dumps(exc.to_operation_outcome()), status_code=400, mimetype=FHIR_JSON
        )
    except (ConsentUnavailableError, StorageUnavailableError):
        return outcome(503, "transient", "consents cannot be read now; no decision made")
    return func.HttpResponse(json.dumps(result), mimetype=mimetype)


def _asked(partner: Partner, keys: Any, purpose: Any, actor: Any) -> Actor:
    """The caller as the requester, once the question is one it may ask."""
    wiring.consent_questions().check(partner, keys, purpose, actor)
    return partner_actor(partner.id, partner)


@bp.route(route="consent/$evaluate", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def consent_evaluate(req: func.HttpRequest) -> func.HttpResponse:
    """A decision for a Parameters request, as Parameters."""

    def answer(body: Any, partner: Partner) -> tuple[Any, str]:
        service = wiring.consent_service()
        asked = read_evaluate_parameters(body, wiring.settings().consent_purpose)
        caller = _asked(partner, asked.patient_keys, asked.purpose, asked.actor)
        data = None
        if asked.resource is not None:
            validate_resource(asked.resource, "resource")
            data = describe_resource(asked.resource, service.policy.zone)
        decision = service.evaluate(
            asked.patient_keys,
            asked.action,
            asked.purpose,
            asked.actor,
            data,
            observer="fhir-intake $evaluate",
            requester=caller,
        )
        return decision_parameters(decision), FHIR_JSON

    return _decide(req, answer)


@bp.route(route="cds-services", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def cds_discovery(req: func.HttpRequest) -> func.HttpResponse:
    """CDS Hooks discovery: the one service we offer."""
    return func.HttpResponse(json.dumps({"services": [SERVICE]}), mimetype="application/json")


@bp.route(
    route="cds-services/patient-consent-consult",
    methods=["POST"],
    auth_level=func.AuthLevel.FUNCTION,
)
def cds_consent_consult(req: func.HttpRequest) -> func.HttpResponse:
    """A decision in the CDS Hooks card shape consent decision services use."""

    def answer(body: Any, partner: Partner) -> tuple[Any, str]:
        asked = read_hook_request(body, wiring.settings().consent_purpose)
        caller = _asked(partner, asked.patient_keys, asked.purpose, asked.actor)
        decision = wiring.consent_service().evaluate(
            asked.patient_keys,
            asked.action,
            asked.purpose,
            asked.actor,
            observer="fhir-intake patient-consent-consult",
            requester=caller,
        )
        return decision_cards(
            decision, public_url(req).split("/cds-services")[0]
        ), "application/json"

    return _decide(req, answer)
