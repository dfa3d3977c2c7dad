"""Console sign-ins: a random token in an HttpOnly cookie, the session itself server-side.

Why server-side: a browser cannot send our API key or bearer token on a page load, and
a signed cookie would need a signing key to provision and rotate. A row per session keyed
by the token's SHA-256 needs none, and signing out (or an operator deleting the row) ends
a session at once. The token is 256 random bits; the table never holds it. Sessions end
after ``IDLE`` without use and after ``LIFETIME`` in any case (automatic logoff, HIPAA
§164.312(a)(2)(iii)); every request re-reads the partner and the key it signed in with,
so roles taken away, the partner removed or the key revoked end it with the next page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from shared.security.models import Partner

from .errors import FormExpiredError, SignInRequiredError
from .models import Session

__all__ = [
    "IDLE",
    "LIFETIME",
    "ConsoleSessions",
    "SessionStore",
    "check_form",
    "new_login_token",
    "session_key",
]

IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=8)
_TOUCH = timedelta(minutes=5)  # a session's last use is written at most this often


def new_login_token() -> str:
    """The sign-in form's own token, in a cookie and a hidden field alike, so a sign-in
    posted from another site (login CSRF) is refused."""
    return secrets.token_urlsafe(24)


def session_key(token: str) -> str:
    """The table key of a session: the token's SHA-256 (the token itself is never kept)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class SessionStore(Protocol):
    """Port: sessions by key (``TableSessionStore``)."""

    def save(self, key: str, session: Session) -> None:
        """Create or replace a session."""

    def load(self, key: str) -> Session | None:
        """A session, or None."""

    def delete(self, key: str) -> None:
        """End a session (nothing if there is none)."""

    def delete_ended(self, now: datetime, idle: timedelta) -> int:
        """Remove every session past its end or idle for ``idle``; how many."""


class ConsoleSessions:
    """Signs viewers in and out and tells who a request's token belongs to."""

    def __init__(
        self,
        store: SessionStore,
        partners: Callable[[str], Partner | None],
        key_live: Callable[[str], bool],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._partners = partners
        self._key_live = key_live
        self._clock = clock

    def sign_in(
        self, partner: Partner, key: str = "", until: datetime | None = None
    ) -> tuple[str, Session]:
        """A new session for an authenticated partner, with the id of the API key it
        presented ("" for a token) and when its credential ends (a token's ``exp``: the
        session ends then too, so an app role taken away in Entra counts within the
        token's life): (cookie token, session).

        Raises:
            StorageUnavailableError: the session could not be kept.
        """
        now = self._clock()
        token = secrets.token_urlsafe(32)
        session = Session(
            partner=partner.id,
            roles=partner.roles,
            key=key,
            csrf=secrets.token_urlsafe(24),
            created=now,
            expires=min(now + LIFETIME, until) if until else now + LIFETIME,
            seen=now,
        )
        self._store.save(session_key(token), session)
        return token, session

    def resolve(self, token: str | None) -> Session:
        """The live session a cookie's token names, its roles narrowed to what the partner
        holds now.

        Raises:
            SignInRequiredError: no token, an unknown one, or a session that has ended.
            StorageUnavailableError: sessions cannot be read now.
        """
        if not token or len(token) > 128:
            raise SignInRequiredError("sign in to use the console")
        key = session_key(token)
        session = self._store.load(key)
        now = self._clock()
        if session is None or now >= session.expires or now - session.seen >= IDLE:
            if session is not None:
                self._store.delete(key)
            raise SignInRequiredError("the session has ended; sign in again")
        partner = self._partners(session.partner)
        roles = session.roles & partner.roles if partner is not None else frozenset()
        if not roles or (session.key and not self._key_live(session.key)):
            self._store.delete(key)
            raise SignInRequiredError("this sign-in no longer holds; sign in again")
        if roles != session.roles or now - session.seen >= _TOUCH:
            session = replace(session, roles=roles, seen=now)
            self._store.save(key, session)
        return session

    def sweep(self) -> int:
        """Remove sessions that have ended (a session nobody signed out of, or came back
        to, would otherwise stay in the table); how many.

        Raises:
            StorageUnavailableError: storage failed.
        """
        return self._store.delete_ended(self._clock(), IDLE)

    def sign_out(self, token: str | None) -> None:
        """End the session a token names (nothing if none).

        Raises:
            StorageUnavailableError: the session could not be removed.
        """
        if token and len(token) <= 128:
            self._store.delete(session_key(token))


def check_form(session: Session, token: str | None, origin: str | None, ours: str) -> None:
    """A state-changing form must carry this session's token and, when the browser says
    where it came from, come from our own origin (OWASP CSRF: synchronizer token plus
    origin check; the cookie is SameSite=Strict besides).

    Raises:
        FormExpiredError: the token is missing or wrong, or the origin is another's.
    """
    if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise FormExpiredError("this form has expired; load the page again")
    if origin and origin.rstrip("/") != ours.rstrip("/"):
        raise FormExpiredError("this form was sent from another site")
