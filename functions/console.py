"""The operator console, ``GET /api/console``: server-rendered pages signed in with a
partner's or operator's credential once, then a session cookie (a browser sends no API
key on a page load, so these routes are anonymous to the Functions host and check the
session themselves). Operators see every partner; a partner sees its own ingestions."""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from urllib.parse import urlencode

import azure.functions as func

from shared import wiring
from shared.console import (
    FormUnreadableError,
    IngestionFilter,
    IngestionStatus,
    Session,
)
from shared.console.pages import asset, render
from shared.console.pipeline import DEAD_COUNTED
from shared.console.sessions import IDLE, LIFETIME, new_login_token
from shared.platform.errors import StorageUnavailableError
from shared.platform.names import Queue
from shared.security import AuthenticationError
from shared.security.api_keys import parse_key
from shared.security.audit import AccessRefusal, AdminAction, admin_audit_event
from shared.security.errors import SecurityUnavailableError

from . import console_http as web
from .console_http import BASE, LOGIN_COOKIE, SESSION_COOKIE

bp = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)
ANONYMOUS = func.AuthLevel.ANONYMOUS
_REPLAYABLE = {q.value: q for q in Queue}


@bp.route(route="console/signin", methods=["GET", "POST"], auth_level=ANONYMOUS)
def console_signin(req: func.HttpRequest) -> func.HttpResponse:
    """The sign-in form; a valid API key or Entra token starts a session (and ends the
    one this browser had)."""
    if req.method == "GET":
        return _signin_form(req)
    try:
        form = web.form(req)
    except FormUnreadableError as exc:
        return _signin_form(req, str(exc), 413)
    expected = web.cookie(req, LOGIN_COOKIE)
    origin = req.headers.get("origin")
    if not expected or not hmac.compare_digest(form.get("login", ""), expected):
        return _signin_form(req, "The sign-in form expired; sign in again.", 400)
    if origin and origin != web.origin(req):
        return _signin_form(req, "Sign in from this site's own page.", 400)
    credential = form.get("credential", "").strip()
    key = parse_key(credential)
    bearer = None if key else f"Bearer {credential}"
    sessions = wiring.console_sessions()
    try:
        partner, until = wiring.authenticator().identify(bearer, credential if key else None)
        sessions.sign_out(web.cookie(req, SESSION_COOKIE))  # no second session beside it
        token, session = sessions.sign_in(partner, key[0] if key else "", until)
    except AuthenticationError as exc:
        # Anonymous: its own refusal budget, so a flood here cannot crowd the API's out.
        wiring.console_access_audit().refused(
            AccessRefusal.AUTHENTICATION, exc.credential, web.route(req), authenticated=False
        )
        return _signin_form(req, "That credential is not valid here.", 401)
    except (SecurityUnavailableError, StorageUnavailableError):
        return web.notice(None, 503, "Try again shortly", "Credentials cannot be checked now.")
    wiring.audit_log().write(
        admin_audit_event(
            AdminAction.CONSOLE_SIGNIN, partner.id, "urn:fhir-intake:console", session.created
        )
    )
    # The sign-in form's cookie is left to expire (ten minutes): one cookie per answer.
    return web.redirect(
        BASE, web.set_cookie(req, SESSION_COOKIE, token, int(LIFETIME.total_seconds()))
    )


def _signin_form(req: func.HttpRequest, error: str = "", status: int = 200) -> func.HttpResponse:
    """The form, with a fresh login token in its cookie and hidden field."""
    login = new_login_token()
    return web.page(
        _signin_page(login, error), status, web.set_cookie(req, LOGIN_COOKIE, login, 600)
    )


def _signin_page(login: str, error: str = "") -> str:
    return render(
        "signin.html",
        base=BASE,
        title="Sign in",
        login=login,
        error=error,
        viewer=None,
        csrf="",
        section="",
        notice="",
        idle_minutes=int(IDLE.total_seconds() // 60),
    )


@bp.route(route="console/signout", methods=["POST"], auth_level=ANONYMOUS)
def console_signout(req: func.HttpRequest) -> func.HttpResponse:
    """End the session; the cookie is forgotten even when the session had ended."""
    token = web.cookie(req, SESSION_COOKIE)

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
        wiring.console_sessions().sign_out(token)
        return web.redirect(f"{BASE}/signin", web.set_cookie(req, SESSION_COOKIE, "", 0))

    answer = web.signed_in(req, work, posted=True)
    if answer.status_code == 303 and "Set-Cookie" not in answer.headers:
        answer.headers["Set-Cookie"] = web.set_cookie(req, SESSION_COOKIE, "", 0)
    return answer


def _when(text: str | None) -> datetime | None:
    """A ``datetime-local`` field's value, read as UTC (the page says so)."""
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text)
        return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # year 1 at +01:00 is before year 1 in UTC
        raise ValueError("times are YYYY-MM-DDTHH:MM, within years 1 to 9999") from exc


@bp.route(route="console", methods=["GET", "POST"], auth_level=ANONYMOUS)
def console_ingestions(req: func.HttpRequest) -> func.HttpResponse:
    """The search page; with no criteria, the last day's ingestions. The form is POSTed,
    so a patient identifier never lands in a URL (history, proxies, request logs); a GET
    takes the same fields in its query, for links by partner or message id."""
    posted = req.method == "POST"

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
        viewer = session.viewer
        fields = form if posted else {k: req.params.get(k) or "" for k in _SEARCH_FIELDS}
        query = {k: (fields.get(k) or "").strip() for k in _SEARCH_FIELDS}
        context = web.context(session, "ingestions")
        error, result = "", None
        try:
            if query["patient"] and not posted:  # it would sit in URLs and request logs
                raise ValueError("search by patient identifier with the form, not a link")
            status = query["status"]
            wanted = IngestionFilter(
                partner=query["partner"] or None,
                since=_when(query["since"]),
                until=_when(query["until"]),
                status=IngestionStatus(status) if status else None,
                message_id=query["message"] or None,
                patient=query["patient"] or None,
            )
            result = wiring.console_search().search(viewer, wanted)
        except ValueError as exc:
            error = str(exc)
        partners = [p.id for p in wiring.partners().list()] if viewer.operator else []
        html = render(
            "ingestions.html",
            **context,
            title="Ingestions",
            query=query,
            partners=partners,
            statuses=[s.value for s in IngestionStatus],
            result=result,
            error=error,
            searched=posted,
        )
        return web.page(html, 400 if error else 200)

    return web.signed_in(req, work, posted=posted)


_SEARCH_FIELDS = ("partner", "since", "until", "status", "message", "patient")


@bp.route(route="console/ingestions/{partner}/{id}", methods=["GET"], auth_level=ANONYMOUS)
def console_ingestion(req: func.HttpRequest) -> func.HttpResponse:
    """One ingestion's journey; the same 404 for an unknown id and another partner's."""

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
        partner, ingestion = req.route_params["partner"], req.route_params["id"].lower()
        item = wiring.console_detail().view(session.viewer, partner, ingestion)
        if item is None:
            return web.notice(session, 404, "Not found", "No ingestion with this id for you.")
        html = render(
            "ingestion.html",
            **web.context(session, "ingestions"),
            title=f"Ingestion {item.id}",
            item=item,
            fhir="/api/fhir",
        )
        return web.page(html)

    return web.signed_in(req, work)


@bp.route(route="console/ingestions/{partner}/{id}/payload", methods=["POST"], auth_level=ANONYMOUS)
def console_payload(req: func.HttpRequest) -> func.HttpResponse:
    """The payload and quarantine records (operators; audited before they are shown)."""

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
        partner, ingestion = req.route_params["partner"], req.route_params["id"].lower()
        view = wiring.console_detail().payload(session.viewer, partner, ingestion)
        if view is None:
            return web.notice(session, 404, "Not found", "No ingestion with this id for you.")
        html = render(
            "payload.html",
            **web.context(session, "ingestions"),
            title=f"Payload of {ingestion}",
            partner=partner,
            id=ingestion,
            view=view,
        )
        return web.page(html)

    return web.signed_in(req, work, posted=True)


@bp.route(route="console/pipeline", methods=["GET"], auth_level=ANONYMOUS)
def console_pipeline(req: func.HttpRequest) -> func.HttpResponse:
    """Poison queues and dead letters, with their replay buttons (operators)."""

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
        pipeline = wiring.console_pipeline()
        poison = pipeline.poison(session.viewer)
        dead = pipeline.dead_letters(session.viewer)
        done, moved = req.params.get("done", ""), req.params.get("moved", "")
        more = " More wait: replay again." if req.params.get("more") == "1" else ""
        notice = (
            f"{int(moved)} sent back to {done}.{more}"
            if moved.isascii()
            and moved.isdigit()
            and len(moved) <= 9
            and (done in _REPLAYABLE or done == "deliver")
            else ""
        )
        html = render(
            "pipeline.html",
            **web.context(session, "pipeline", notice),
            title="Pipeline",
            poison=poison,
            dead=dead,
            dead_counted=DEAD_COUNTED,
        )
        return web.page(html)

    return web.signed_in(req, work)


@bp.route(route="console/pipeline/replay", methods=["POST"], auth_level=ANONYMOUS)
def console_replay(req: func.HttpRequest) -> func.HttpResponse:
    """Send a poison queue's messages back to their stage (``intake replay``), a bounded
    number per press."""

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
        queue = _REPLAYABLE.get(form.get("queue", ""))
        if queue is None:
            return web.notice(session, 400, "Not done", "No such queue.")
        moved, more = wiring.console_pipeline().replay_queue(session.viewer, queue)
        done = {"done": queue.value, "moved": moved, "more": int(more)}
        return web.redirect(f"{BASE}/pipeline?{urlencode(done)}")

    return web.signed_in(req, work, posted=True)


@bp.route(route="console/pipeline/redeliver", methods=["POST"], auth_level=ANONYMOUS)
def console_redeliver(req: func.HttpRequest) -> func.HttpResponse:
    """Deliver a subscription's dead letters again (``$replay``)."""

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
        subscription = form.get("subscription", "")
        if not subscription.isalnum() or len(subscription) != 32:
            return web.notice(session, 400, "Not done", "No such subscription.")
        queued = wiring.console_pipeline().replay_subscription(session.viewer, subscription)
        return web.redirect(f"{BASE}/pipeline?{urlencode({'done': 'deliver', 'moved': queued})}")

    return web.signed_in(req, work, posted=True)


@bp.route(route="console/figures", methods=["GET"], auth_level=ANONYMOUS)
def console_figures(req: func.HttpRequest) -> func.HttpResponse:
    """Per-partner figures for the last hour and day."""

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
        windows = wiring.console_figures().windows(session.viewer)
        html = render(
            "figures.html", **web.context(session, "figures"), title="Figures", windows=windows
        )
        return web.page(html)

    return web.signed_in(req, work)


@bp.route(route="console/assets/{name}", methods=["GET"], auth_level=ANONYMOUS)
def console_asset(req: func.HttpRequest) -> func.HttpResponse:
    """The console's stylesheet and script (public: they hold no data)."""
    found = asset(req.route_params.get("name", ""))
    if found is None:
        return func.HttpResponse("not found", status_code=404, mimetype="text/plain")
    data, content_type = found
    return func.HttpResponse(
        data,
        mimetype=content_type.split(";")[0],
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
