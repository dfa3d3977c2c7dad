"""What every console page does alike over HTTP: the session cookie read and set, the
form read within its bounds, the page answered with the console's security headers, and
the one wrapper that runs a page for a live session (its form's token and origin checked)
and turns refusals into pages. ``functions/console.py`` holds the routes."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import azure.functions as func

from shared import wiring
from shared.console import (
    ActionRefusedError,
    ConsoleForbiddenError,
    FormExpiredError,
    FormUnreadableError,
    Session,
    SignInRequiredError,
    check_form,
)
from shared.console.pages import SECURITY_HEADERS, render
from shared.platform.errors import StorageUnavailableError
from shared.security.audit import AccessRefusal

from .responses import public_url

BASE = "/api/console"
SESSION_COOKIE = "fik_console"
LOGIN_COOKIE = "fik_console_login"  # the sign-in form's own token (login CSRF)
MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 20


def origin(req: func.HttpRequest) -> str:
    parts = urlsplit(public_url(req))
    return f"{parts.scheme}://{parts.netloc}"


def cookie(req: func.HttpRequest, name: str) -> str | None:
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


def set_cookie(req: func.HttpRequest, name: str, value: str, seconds: int) -> str:
    """A cookie only our console's paths get, never script-readable or sent cross-site;
    Secure wherever the public origin is HTTPS (everywhere but a local host)."""
    secure = "; Secure" if origin(req).startswith("https://") else ""
    return f"{name}={value}; Path={BASE}; Max-Age={seconds}; HttpOnly; SameSite=Strict{secure}"


def page(html: str, status: int = 200, cookie: str = "", **headers: str) -> func.HttpResponse:
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


def redirect(location: str, cookie: str = "") -> func.HttpResponse:
    return page("", 303, cookie, Location=location)


def notice(session: Session | None, status: int, title: str, text: str) -> func.HttpResponse:
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
    return page(html, status, **({"Retry_After": "5"} if status == 503 else {}))


def form(req: func.HttpRequest) -> dict[str, str]:
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


def signed_in(
    req: func.HttpRequest,
    work: Callable[[Session, dict[str, str]], func.HttpResponse],
    *,
    posted: bool = False,
) -> func.HttpResponse:
    """Run ``work`` for the request's live session with the form it posted (its token and
    origin checked) or {}; refusals become pages: sign in again, 400, 403 (audited), 503."""
    session: Session | None = None
    try:
        session = wiring.console_sessions().resolve(cookie(req, SESSION_COOKIE))
        fields = form(req) if posted else {}
        if posted:
            check_form(session, fields.get("csrf"), req.headers.get("origin"), origin(req))
        return work(session, fields)
    except SignInRequiredError:
        return redirect(f"{BASE}/signin")
    except FormUnreadableError as exc:
        return notice(session, 413, "Not read", str(exc))
    except (ConsoleForbiddenError, FormExpiredError) as exc:
        partner = session.partner if session else "unknown"
        wiring.console_access_audit().refused(AccessRefusal.AUTHORIZATION, partner, route(req))
        return notice(session, 403, "Not allowed", str(exc))
    except ActionRefusedError as exc:
        return notice(session, 409, "Not done", str(exc))
    except StorageUnavailableError:
        return notice(session, 503, "Try again shortly", "Storage is unavailable right now.")


def route(req: func.HttpRequest) -> str:
    """Method and path, for the audit trail (never the query)."""
    return f"{req.method} {urlsplit(req.url).path}"[:300]


def context(session: Session, section: str, notice: str = "") -> dict[str, object]:
    return {
        "base": BASE,
        "viewer": session.viewer,
        "csrf": session.csrf,
        "section": section,
        "notice": notice,
    }
