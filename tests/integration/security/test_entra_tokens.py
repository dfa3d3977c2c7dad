"""Entra ID token validation against a JWKS served on loopback: signature, issuer,
audience, expiry and not-before with skew, key rollover, and the fetch rationing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from shared.security.errors import AuthenticationError, SecurityUnavailableError
from shared.security.tokens import EntraTokenValidator, JwksKeys
from tests.support.entra_stub import AUDIENCE, TENANT, Entra, entra_stub


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def entra() -> Iterator[Entra]:
    with entra_stub() as running:
        yield running


def validator(entra: Entra, clock: Clock | None = None) -> EntraTokenValidator:
    keys = JwksKeys(
        f"{entra.authority}/{TENANT}/discovery/v2.0/keys", httpx.Client(), clock or Clock()
    )
    return EntraTokenValidator(TENANT, [AUDIENCE], keys, authority=entra.authority)


def test_a_good_token_names_its_application_and_roles(entra: Entra) -> None:
    exp = int(time.time()) + 1800
    found = validator(entra).validate(entra.token("app-1", roles=["read", "Other.Role"], exp=exp))
    assert found.principal == "app-1"
    assert found.roles == {"read", "Other.Role"}
    assert found.expires is not None and found.expires.timestamp() == exp  # a session's end
    v1 = entra.token("ignored", azp=None, appid="app-2")  # v1 tokens say appid
    assert validator(entra).validate(v1).principal == "app-2"


@pytest.mark.parametrize(
    ("claims", "complaint"),
    [
        ({"exp": -120}, "expired"),  # times are seconds from now, taken when the test runs
        ({"nbf": 300}, "not valid yet"),
        ({"aud": "api://someone-else"}, "another audience"),
        ({"iss": f"https://login.example.org/{TENANT}/v2.0"}, "another issuer"),
        ({"tid": "99999999-2222-3333-4444-555555555555"}, "another tenant"),
        ({"azp": None, "oid": None}, "names no application"),
        ({"exp": None}, "invalid"),
    ],
)
def test_bad_claims_are_refused(entra: Entra, claims: dict[str, object], complaint: str) -> None:
    now = int(time.time())
    timed = {
        k: now + v if k in {"exp", "nbf"} and isinstance(v, int) else v for k, v in claims.items()
    }
    with pytest.raises(AuthenticationError, match=complaint):
        validator(entra).validate(entra.token("app-1", **timed))


def test_small_clock_skew_is_tolerated(entra: Entra) -> None:
    late = entra.token("app-1", exp=int(time.time()) - 30)
    assert validator(entra).validate(late).principal == "app-1"


def test_signatures_are_checked(entra: Entra) -> None:
    token = entra.token("app-1")
    head, body, signature = token.split(".")
    tampered = ".".join([head, body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB"), signature])
    with pytest.raises(AuthenticationError):
        validator(entra).validate(tampered)
    forged = entra.token("app-1", kid=entra.add_key(publish=False))  # a key Entra never listed
    with pytest.raises(AuthenticationError, match="unknown key"):
        validator(entra).validate(forged)
    unsigned = jwt.encode({"azp": "app-1", "aud": AUDIENCE}, key=None, algorithm="none")
    with pytest.raises(AuthenticationError, match="RS256"):
        validator(entra).validate(unsigned)
    hmac = jwt.encode({"azp": "app-1"}, "secret-that-is-long-enough-for-hs256!!", algorithm="HS256")
    with pytest.raises(AuthenticationError, match="RS256"):  # no algorithm confusion
        validator(entra).validate(hmac)
    with pytest.raises(AuthenticationError, match="not a JWT"):
        validator(entra).validate("not-a-token")


def test_key_rollover_is_picked_up_and_unknown_kids_are_rationed(entra: Entra) -> None:
    clock = Clock()
    check = validator(entra, clock)
    check.validate(entra.token("app-1"))
    assert entra.fetches == 1
    new_kid = entra.add_key()  # Entra publishes a new key and starts signing with it
    clock.now += 61
    assert check.validate(entra.token("app-1", kid=new_kid)).principal == "app-1"
    assert entra.fetches == 2
    # Made-up key ids within the minute do not fetch again.
    for _ in range(5):
        with pytest.raises(AuthenticationError, match="unknown key"):
            check.validate(entra.token("app-1", kid=entra.add_key(publish=False)))
    assert entra.fetches == 2


def test_an_unreachable_key_endpoint_is_unavailable_not_a_refusal() -> None:
    keys = JwksKeys("http://127.0.0.1:9/keys", httpx.Client(timeout=1))
    with pytest.raises(SecurityUnavailableError):
        keys.get("any")
