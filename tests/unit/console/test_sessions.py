"""Console sessions: a random token, kept only as its hash, ending on idle, on lifetime, on
sign-out and when the partner loses its roles; forms checked for token and origin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.console import ConsoleSessions, FormExpiredError, Session, SignInRequiredError
from shared.console.sessions import IDLE, LIFETIME, check_form, session_key
from shared.security import Partner
from shared.security.models import Role

START = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


class MemorySessions:
    def __init__(self) -> None:
        self.rows: dict[str, Session] = {}
        self.saves = 0

    def save(self, key: str, session: Session) -> None:
        self.rows[key] = session
        self.saves += 1

    def load(self, key: str) -> Session | None:
        return self.rows.get(key)

    def delete(self, key: str) -> None:
        self.rows.pop(key, None)

    def delete_ended(self, now: datetime, idle: timedelta) -> int:
        ended = [k for k, s in self.rows.items() if s.expires <= now or s.seen <= now - idle]
        for key in ended:
            del self.rows[key]
        return len(ended)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


OPS = Partner(id="ops", name="Ops", roles=frozenset({Role.ADMIN, Role.INGEST}))


REVOKED: set[str] = set()


def _sessions(
    partners: dict[str, Partner] | None = None,
) -> tuple[ConsoleSessions, MemorySessions, Clock]:
    store, clock = MemorySessions(), Clock()
    known = partners if partners is not None else {"ops": OPS}
    sessions = ConsoleSessions(store, known.get, lambda k: k not in REVOKED, clock)
    return sessions, store, clock


def test_the_table_keeps_the_tokens_hash_never_the_token() -> None:
    sessions, store, _ = _sessions()
    token, _ = sessions.sign_in(OPS)
    assert len(token) >= 43  # 256 random bits
    assert list(store.rows) == [session_key(token)] and token not in session_key(token)
    assert sessions.resolve(token).viewer.operator


def test_a_session_ends_after_idle_and_after_its_lifetime() -> None:
    sessions, store, clock = _sessions()
    token, _ = sessions.sign_in(OPS)
    clock.now = START + IDLE - timedelta(seconds=1)
    sessions.resolve(token)  # used in time: the idle limit counts from now
    clock.now += IDLE - timedelta(seconds=1)
    sessions.resolve(token)
    clock.now += IDLE
    with pytest.raises(SignInRequiredError):
        sessions.resolve(token)
    assert not store.rows  # and the row is gone

    token, _ = sessions.sign_in(OPS)
    started, step = clock.now, timedelta(minutes=10)
    for _ in range(int((LIFETIME - step) / step)):  # in use all day, never idle
        clock.now += step
        sessions.resolve(token)
    clock.now = started + LIFETIME
    with pytest.raises(SignInRequiredError):
        sessions.resolve(token)


def test_use_is_written_back_at_most_every_few_minutes() -> None:
    sessions, store, clock = _sessions()
    token, _ = sessions.sign_in(OPS)
    for _ in range(20):
        clock.now += timedelta(seconds=10)
        sessions.resolve(token)
    assert store.saves == 1 + 0  # 200 s of page views: no write beyond the sign-in
    clock.now += timedelta(minutes=5)
    sessions.resolve(token)
    assert store.saves == 2


def test_roles_taken_away_take_effect_at_the_next_page() -> None:
    partners = {"ops": OPS}
    sessions, _, _ = _sessions(partners)
    token, _ = sessions.sign_in(OPS)
    partners["ops"] = OPS.model_copy(update={"roles": frozenset({Role.INGEST})})
    assert not sessions.resolve(token).viewer.operator
    del partners["ops"]
    with pytest.raises(SignInRequiredError):
        sessions.resolve(token)


def test_revoking_the_key_it_signed_in_with_ends_the_session() -> None:
    sessions, _, _ = _sessions()
    with_key, _ = sessions.sign_in(OPS, "k-1")
    with_token, _ = sessions.sign_in(OPS)  # an Entra token: no key to revoke
    sessions.resolve(with_key)
    REVOKED.add("k-1")
    with pytest.raises(SignInRequiredError):
        sessions.resolve(with_key)
    assert sessions.resolve(with_token).partner == "ops"


def test_a_session_opened_with_a_token_ends_when_the_token_does() -> None:
    sessions, _, clock = _sessions()
    token, session = sessions.sign_in(OPS, until=START + timedelta(minutes=20))
    assert session.expires == START + timedelta(minutes=20)
    clock.now = START + timedelta(minutes=19)
    sessions.resolve(token)
    clock.now = START + timedelta(minutes=20)
    with pytest.raises(SignInRequiredError):
        sessions.resolve(token)
    _, longer = sessions.sign_in(OPS, until=START + timedelta(days=2))
    assert longer.expires == clock.now + LIFETIME  # never past the session's own limit


def test_unknown_missing_and_signed_out_tokens_sign_nobody_in() -> None:
    sessions, _, _ = _sessions()
    for token in (None, "", "x" * 200, "not-a-session"):
        with pytest.raises(SignInRequiredError):
            sessions.resolve(token)
    token, _ = sessions.sign_in(OPS)
    sessions.sign_out(token)
    with pytest.raises(SignInRequiredError):
        sessions.resolve(token)


def test_forms_need_the_sessions_token_and_our_origin() -> None:
    sessions, _, _ = _sessions()
    _, session = sessions.sign_in(OPS)
    ours = "https://intake.example.org"
    check_form(session, session.csrf, ours, ours)
    check_form(session, session.csrf, None, ours)  # no Origin sent: the token decides
    for token, origin in (
        (None, ours),
        ("", ours),
        (session.csrf + "x", ours),
        (session.csrf, "https://evil.example"),
        (session.csrf, "null"),
    ):
        with pytest.raises(FormExpiredError):
            check_form(session, token, origin, ours)
