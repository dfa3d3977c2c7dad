"""The operator console, ``GET /api/console``: server-rendered pages signed in with a
partner's or operator's credential once, then a session cookie (a browser sends no API
key on a page load, so these routes are anonymous to the Functions host and check the
session themselves). Operators see every partner; a partner sees its own ingestions."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import azure.functions as func

from shared import wiring
from shared.console import (
    ActionRefusedError,
    ConsoleForbiddenError,
    FormExpiredError,
    FormUnreadableError,
    IngestionFilter,
    IngestionStatus,
    Session,
    SignInRequiredError,
    check_form,
)
from shared.console.pages import SECURITY_HEADERS, asset, render
from shared.console.pipeline import DEAD_COUNTED
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
MAX_FORM_FIELDS = 20
ANONYMOUS = func.AuthLevel.ANONYMOUS
_REPLAYABLE = {q.value: q for q in Queue}


def _origin(req: func.HttpRequest) -> str:
    parts = urlsplit(public_url(req))
    return f"{parts.scheme}://{parts.netloc}"


def _cookie(req: func.HttpRequest, name: str) -> str | None:
    """One cookie's value, read by hand: a malformed cookie of someone else's on the same
    origin must not hide ours (``SimpleCookie`` stops at the first), and two of ours (one
    tossed in at another path) mean neither is trusted."""
    found = [
        value.strip()
        for part in (req.headers.get("cookie") or "").split(";")
        for key, eq, value in [part.strip().partition("=")]
        if eq and key == name
    ]
    return found[0] if len(found) == 1 and found[0] else None


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
    """A urlencoded form's fields (the first value of each).

    Raises:
        FormUnreadableError: over ``MAX_FORM_BYTES`` or ``MAX_FORM_FIELDS`` fields.
    """
    body = req.get_body()
    if len(body) > MAX_FORM_BYTES:
        raise FormUnreadableError(f"a form is at most {MAX_FORM_BYTES // 1024} KiB")
    try:
        parsed = parse_qs(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:
        raise FormUnreadableError(f"a form has at most {MAX_FORM_FIELDS} fields") from exc
    return {k: v[0] for k, v in parsed.items()}


def _signed_in(
    req: func.HttpRequest,
    work: Callable[[Session, dict[str, str]], func.HttpResponse],
    *,
    posted: bool = False,
) -> func.HttpResponse:
    """Run ``work`` for the request's live session with the form it posted (its token and
    origin checked) or {}; refusals become pages: sign in again, 400, 403 (audited), 503."""
    session: Session | None = None
    try:
        session = wiring.console_sessions().resolve(_cookie(req, SESSION_COOKIE))
        form = _form(req) if posted else {}
        if posted:
            check_form(session, form.get("csrf"), req.headers.get("origin"), _origin(req))
        return work(session, form)
    except SignInRequiredError:
        return _redirect(f"{BASE}/signin")
    except FormUnreadableError as exc:
        return _notice(session, 413, "Not read", str(exc))
    except (ConsoleForbiddenError, FormExpiredError) as exc:
        partner = session.partner if session else "unknown"
        wiring.console_access_audit().refused(AccessRefusal.AUTHORIZATION, partner, _route(req))
        return _notice(session, 403, "Not allowed", str(exc))
    except ActionRefusedError as exc:
        return _notice(session, 409, "Not done", str(exc))
    except StorageUnavailableError:
        return _notice(session, 503, "Try again shortly", "Storage is unavailable right now.")


def _route(req: func.HttpRequest) -> str:
    """Method and path, for the audit trail (never the query)."""
    return f"{req.method} {urlsplit(req.url).path}"[:300]


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
    """The sign-in form; a valid API key or Entra token starts a session (and ends the
    one this browser had)."""
    if req.method == "GET":
        return _signin_form(req)
    try:
        form = _form(req)
    except FormUnreadableError as exc:
        return _signin_form(req, str(exc), 413)
    expected = _cookie(req, LOGIN_COOKIE)
    origin = req.headers.get("origin")
    if not expected or not hmac.compare_digest(form.get("login", ""), expected):
        return _signin_form(req, "The sign-in form expired; sign in again.", 400)
    if origin and origin != _origin(req):
        return _signin_form(req, "Sign in from this site's own page.", 400)
    credential = form.get("credential", "").strip()
    key = parse_key(credential)
    bearer = None if key else f"Bearer {credential}"
    sessions = wiring.console_sessions()
    try:
        partner = wiring.authenticator().authenticate(bearer, credential if key else None)
        sessions.sign_out(_cookie(req, SESSION_COOKIE))  # no second session beside it
        token, session = sessions.sign_in(partner, key[0] if key else "")
    except AuthenticationError as exc:
        # Anonymous: its own refusal budget, so a flood here cannot crowd the API's out.
        wiring.console_access_audit().refused(
            AccessRefusal.AUTHENTICATION, exc.credential, _route(req), authenticated=False
        )
        return _signin_form(req, "That credential is not valid here.", 401)
    except (SecurityUnavailableError, StorageUnavailableError):
        return _notice(None, 503, "Try again shortly", "Credentials cannot be checked now.")
    wiring.audit_log().write(
        admin_audit_event(
            AdminAction.CONSOLE_SIGNIN, partner.id, "urn:fhir-intake:console", session.created
        )
    )
    # The sign-in form's cookie is left to expire (ten minutes): one cookie per answer.
    return _redirect(BASE, _set_cookie(req, SESSION_COOKIE, token, int(LIFETIME.total_seconds())))


def _signin_form(req: func.HttpRequest, error: str = "", status: int = 200) -> func.HttpResponse:
    """The form, with a fresh login token in its cookie and hidden field."""
    login = new_login_token()
    return _page(_signin_page(login, error), status, _set_cookie(req, LOGIN_COOKIE, login, 600))


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
    token = _cookie(req, SESSION_COOKIE)

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
        wiring.console_sessions().sign_out(token)
        return _redirect(f"{BASE}/signin", _set_cookie(req, SESSION_COOKIE, "", 0))

    answer = _signed_in(req, work, posted=True)
    if answer.status_code == 303 and "Set-Cookie" not in answer.headers:
        answer.headers["Set-Cookie"] = _set_cookie(req, SESSION_COOKIE, "", 0)
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
        context = _context(session, "ingestions")
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
        return _page(html, 400 if error else 200)

    return _signed_in(req, work, posted=posted)


_SEARCH_FIELDS = ("partner", "since", "until", "status", "message", "patient")


@bp.route(route="console/ingestions/{partner}/{id}", methods=["GET"], auth_level=ANONYMOUS)
def console_ingestion(req: func.HttpRequest) -> func.HttpResponse:
    """One ingestion's journey; the same 404 for an unknown id and another partner's."""

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
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

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
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

    return _signed_in(req, work, posted=True)


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
            **_context(session, "pipeline", notice),
            title="Pipeline",
            poison=poison,
            dead=dead,
            dead_counted=DEAD_COUNTED,
        )
        return _page(html)

    return _signed_in(req, work)


@bp.route(route="console/pipeline/replay", methods=["POST"], auth_level=ANONYMOUS)
def console_replay(req: func.HttpRequest) -> func.HttpResponse:
    """Send a poison queue's messages back to their stage (``intake replay``), a bounded
    number per press."""

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
        queue = _REPLAYABLE.get(form.get("queue", ""))
        if queue is None:
            return _notice(session, 400, "Not done", "No such queue.")
        moved, more = wiring.console_pipeline().replay_queue(session.viewer, queue)
        done = {"done": queue.value, "moved": moved, "more": int(more)}
        return _redirect(f"{BASE}/pipeline?{urlencode(done)}")

    return _signed_in(req, work, posted=True)


@bp.route(route="console/pipeline/redeliver", methods=["POST"], auth_level=ANONYMOUS)
def console_redeliver(req: func.HttpRequest) -> func.HttpResponse:
    """Deliver a subscription's dead letters again (``$replay``)."""

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
        subscription = form.get("subscription", "")
        if not subscription.isalnum() or len(subscription) != 32:
            return _notice(session, 400, "Not done", "No such subscription.")
        queued = wiring.console_pipeline().replay_subscription(session.viewer, subscription)
        return _redirect(f"{BASE}/pipeline?{urlencode({'done': 'deliver', 'moved': queued})}")

    return _signed_in(req, work, posted=True)


@bp.route(route="console/figures", methods=["GET"], auth_level=ANONYMOUS)
def console_figures(req: func.HttpRequest) -> func.HttpResponse:
    """Per-partner figures for the last hour and day."""

    def work(session: Session, form: dict[str, str]) -> func.HttpResponse:
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
