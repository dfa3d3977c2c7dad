"""The operator console, ``GET /api/console``: server-rendered pages signed in with a
partner's or operator's credential once, then a session cookie (a browser sends no API
key on a page load, so these routes are anonymous to the Functions host and check the
session themselves). Operators see every partner; a partner sees its own ingestions."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlencode, urlsplit

import azure.functions as func

from shared import wiring
from shared.console import (
    ActionRefusedError,
    ConsoleForbiddenError,
    FormExpiredError,
    IngestionFilter,
    IngestionStatus,
    Session,
    SignInRequiredError,
    check_form,
)
from shared.console.pages import SECURITY_HEADERS, asset, render
from shared.console.sessions import IDLE, LIFETIME, new_login_token
from shared.platform.errors import StorageUnavailableError
from shared.platform.names import Queue
from shared.security import AuthenticationError
from shared.security.api_keys import parse_key
from shared.security.audit import AccessRefusal, AdminAction, admin_audit_event
from shared.security.errors import SecurityUnavailableError

from .responses import public_url

bp = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)
BASE = "/api/console"
SESSION_COOKIE = "fik_console"
LOGIN_COOKIE = "fik_console_login"  # the sign-in form's own token (login CSRF)
MAX_FORM_BYTES = 16 * 1024
ANONYMOUS = func.AuthLevel.ANONYMOUS
_REPLAYABLE = {q.value: q for q in Queue}


def _origin(req: func.HttpRequest) -> str:
    parts = urlsplit(public_url(req))
    return f"{parts.scheme}://{parts.netloc}"


def _cookie(req: func.HttpRequest, name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(req.headers.get("cookie") or "")
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


def _set_cookie(req: func.HttpRequest, name: str, value: str, seconds: int) -> str:
    """A cookie only our console's paths get, never script-readable or sent cross-site;
    Secure wherever the public origin is HTTPS (everywhere but a local host)."""
    secure = "; Secure" if _origin(req).startswith("https://") else ""
    return f"{name}={value}; Path={BASE}; Max-Age={seconds}; HttpOnly; SameSite=Strict{secure}"


def _page(html: str, status: int = 200, cookie: str = "", **headers: str) -> func.HttpResponse:
    """An HTML answer with the console's security headers (and at most one cookie: the
    Functions HTTP response holds one value per header)."""
    extra = {name.replace("_", "-"): value for name, value in headers.items()}
    if cookie:
        extra["Set-Cookie"] = cookie
    return func.HttpResponse(
        html,
        status_code=status,
        mimetype="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, **extra},
    )


def _redirect(location: str, cookie: str = "") -> func.HttpResponse:
    return _page("", 303, cookie, Location=location)


def _notice(session: Session | None, status: int, title: str, text: str) -> func.HttpResponse:
    html = render(
        "notice.html",
        base=BASE,
        title=title,
        text=text,
        viewer=session.viewer if session else None,
        csrf=session.csrf if session else "",
        section="",
        notice="",
    )
    return _page(html, status, **({"Retry_After": "5"} if status == 503 else {}))


def _form(req: func.HttpRequest) -> dict[str, str]:
    body = req.get_body()[: MAX_FORM_BYTES + 1]
    if len(body) > MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    return {k: v[0] for k, v in parsed.items()}


def _signed_in(
    req: func.HttpRequest,
    work: Callable[[Session], func.HttpResponse],
    *,
    form: dict[str, str] | None = None,
) -> func.HttpResponse:
    """Run ``work`` for the request's live session (checking a form's token for a POST);
    refusals become pages: sign in again, 403 (audited), 503."""
    session: Session | None = None
    try:
        session = wiring.console_sessions().resolve(_cookie(req, SESSION_COOKIE))
        if form is not None:
            check_form(session, form.get("csrf"), req.headers.get("origin"), _origin(req))
        return work(session)
    except SignInRequiredError:
        return _redirect(f"{BASE}/signin")
    except (ConsoleForbiddenError, FormExpiredError) as exc:
        partner = session.partner if session else "unknown"
        route = f"{req.method} {urlsplit(req.url).path}"[:300]
        wiring.access_audit().refused(AccessRefusal.AUTHORIZATION, partner, route)
        return _notice(session, 403, "Not allowed", str(exc))
    except ActionRefusedError as exc:
        return _notice(session, 409, "Not done", str(exc))
    except StorageUnavailableError:
        return _notice(session, 503, "Try again shortly", "Storage is unavailable right now.")


def _context(session: Session, section: str, notice: str = "") -> dict[str, object]:
    return {
        "base": BASE,
        "viewer": session.viewer,
        "csrf": session.csrf,
        "section": section,
        "notice": notice,
    }


@bp.route(route="console/signin", methods=["GET", "POST"], auth_level=ANONYMOUS)
def console_signin(req: func.HttpRequest) -> func.HttpResponse:
    """The sign-in form; a valid API key or Entra token starts a session."""
    if req.method == "GET":
        login = new_login_token()
        return _page(_signin_page(login), cookie=_set_cookie(req, LOGIN_COOKIE, login, 600))
    form = _form(req)
    expected = _cookie(req, LOGIN_COOKIE)
    origin = req.headers.get("origin")
    if not expected or form.get("login") != expected or (origin and origin != _origin(req)):
        return _redirect(f"{BASE}/signin")
    credential = form.get("credential", "").strip()
    key = parse_key(credential)
    bearer = None if key else f"Bearer {credential}"
    try:
        partner = wiring.authenticator().authenticate(bearer, credential if key else None)
        token, session = wiring.console_sessions().sign_in(partner, key[0] if key else "")
    except AuthenticationError as exc:
        route = f"{req.method} {urlsplit(req.url).path}"
        wiring.access_audit().refused(
            AccessRefusal.AUTHENTICATION, exc.credential, route, authenticated=False
        )
        login = new_login_token()
        page = _signin_page(login, "That credential is not valid here.")
        return _page(page, 401, _set_cookie(req, LOGIN_COOKIE, login, 600))
    except (SecurityUnavailableError, StorageUnavailableError):
        return _notice(None, 503, "Try again shortly", "Credentials cannot be checked now.")
    wiring.audit_log().write(
        admin_audit_event(
            AdminAction.CONSOLE_SIGNIN, partner.id, "urn:fhir-intake:console", session.created
        )
    )
    # The sign-in form's cookie is left to expire (ten minutes): one cookie per answer.
    return _redirect(BASE, _set_cookie(req, SESSION_COOKIE, token, int(LIFETIME.total_seconds())))


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
    """End the session and forget its cookie."""
    token = _cookie(req, SESSION_COOKIE)

    def work(session: Session) -> func.HttpResponse:
        wiring.console_sessions().sign_out(token)
        return _redirect(f"{BASE}/signin", _set_cookie(req, SESSION_COOKIE, "", 0))

    return _signed_in(req, work, form=_form(req))


def _when(text: str | None) -> datetime | None:
    """A ``datetime-local`` field's value, read as UTC (the page says so)."""
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError("times are YYYY-MM-DDTHH:MM") from exc
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


@bp.route(route="console", methods=["GET", "POST"], auth_level=ANONYMOUS)
def console_ingestions(req: func.HttpRequest) -> func.HttpResponse:
    """The search page; with no criteria, the last day's ingestions. The form is POSTed,
    so a patient identifier never lands in a URL (history, proxies, request logs); a GET
    takes the same fields in its query, for links by partner or message id."""
    form = _form(req) if req.method == "POST" else None
    fields = form if form is not None else {k: req.params.get(k) or "" for k in _SEARCH_FIELDS}

    def work(session: Session) -> func.HttpResponse:
        viewer = session.viewer
        query = {k: (fields.get(k) or "").strip() for k in _SEARCH_FIELDS}
        context = _context(session, "ingestions")
        error, result = "", None
        try:
            status = query["status"]
            wanted = IngestionFilter(
                partner=query["partner"] or None,
                since=_when(query["since"])
                or (None if any(query.values()) else datetime.now(UTC) - timedelta(days=1)),
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
        )
        return _page(html, 400 if error else 200)

    return _signed_in(req, work, form=form)


_SEARCH_FIELDS = ("partner", "since", "until", "status", "message", "patient")


@bp.route(route="console/ingestions/{partner}/{id}", methods=["GET"], auth_level=ANONYMOUS)
def console_ingestion(req: func.HttpRequest) -> func.HttpResponse:
    """One ingestion's journey; the same 404 for an unknown id and another partner's."""

    def work(session: Session) -> func.HttpResponse:
        partner, ingestion = req.route_params["partner"], req.route_params["id"].lower()
        item = wiring.console_detail().view(session.viewer, partner, ingestion)
        if item is None:
            return _notice(session, 404, "Not found", "No ingestion with this id for you.")
        html = render(
            "ingestion.html",
            **_context(session, "ingestions"),
            title=f"Ingestion {item.id}",
            item=item,
            fhir="/api/fhir",
        )
        return _page(html)

    return _signed_in(req, work)


@bp.route(route="console/ingestions/{partner}/{id}/payload", methods=["POST"], auth_level=ANONYMOUS)
def console_payload(req: func.HttpRequest) -> func.HttpResponse:
    """The payload and quarantine records (operators; audited before they are shown)."""

    def work(session: Session) -> func.HttpResponse:
        partner, ingestion = req.route_params["partner"], req.route_params["id"].lower()
        view = wiring.console_detail().payload(session.viewer, partner, ingestion)
        if view is None:
            return _notice(session, 404, "Not found", "No ingestion with this id for you.")
        html = render(
            "payload.html",
            **_context(session, "ingestions"),
            title=f"Payload of {ingestion}",
            partner=partner,
            id=ingestion,
            view=view,
        )
        return _page(html)

    return _signed_in(req, work, form=_form(req))


@bp.route(route="console/pipeline", methods=["GET"], auth_level=ANONYMOUS)
def console_pipeline(req: func.HttpRequest) -> func.HttpResponse:
    """Poison queues and dead letters, with their replay buttons (operators)."""

    def work(session: Session) -> func.HttpResponse:
        pipeline = wiring.console_pipeline()
        poison = pipeline.poison(session.viewer)
        dead = pipeline.dead_letters(session.viewer)
        done = req.params.get("done", "")
        moved = req.params.get("moved", "")
        notice = (
            f"{int(moved)} sent back to {done}."
            if moved.isdigit() and (done in _REPLAYABLE or done == "deliver")
            else ""
        )
        html = render(
            "pipeline.html",
            **_context(session, "pipeline", notice),
            title="Pipeline",
            poison=poison,
            dead=dead,
        )
        return _page(html)

    return _signed_in(req, work)


@bp.route(route="console/pipeline/replay", methods=["POST"], auth_level=ANONYMOUS)
def console_replay(req: func.HttpRequest) -> func.HttpResponse:
    """Send a poison queue's messages back to their stage (``intake replay``)."""
    form = _form(req)

    def work(session: Session) -> func.HttpResponse:
        queue = _REPLAYABLE.get(form.get("queue", ""))
        if queue is None:
            return _notice(session, 400, "Not done", "No such queue.")
        moved = wiring.console_pipeline().replay_queue(session.viewer, queue)
        return _redirect(f"{BASE}/pipeline?{urlencode({'done': queue.value, 'moved': moved})}")

    return _signed_in(req, work, form=form)


@bp.route(route="console/pipeline/redeliver", methods=["POST"], auth_level=ANONYMOUS)
def console_redeliver(req: func.HttpRequest) -> func.HttpResponse:
    """Deliver a subscription's dead letters again (``$replay``)."""
    form = _form(req)

    def work(session: Session) -> func.HttpResponse:
        subscription = form.get("subscription", "")
        if not subscription.isalnum() or len(subscription) != 32:
            return _notice(session, 400, "Not done", "No such subscription.")
        queued = wiring.console_pipeline().replay_subscription(session.viewer, subscription)
        return _redirect(f"{BASE}/pipeline?{urlencode({'done': 'deliver', 'moved': queued})}")

    return _signed_in(req, work, form=form)


@bp.route(route="console/figures", methods=["GET"], auth_level=ANONYMOUS)
def console_figures(req: func.HttpRequest) -> func.HttpResponse:
    """Per-partner figures for the last hour and day."""

    def work(session: Session) -> func.HttpResponse:
        windows = wiring.console_figures().windows(session.viewer)
        html = render(
            "figures.html", **_context(session, "figures"), title="Figures", windows=windows
        )
        return _page(html)

    return _signed_in(req, work)


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
