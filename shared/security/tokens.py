"""Microsoft Entra ID bearer tokens: signature against the tenant's JWKS, issuer,
audience, expiry and not-before with a small skew, and the calling principal's id.

PyJWT does the cryptography and claim checks. The key set is fetched here, cached, and
refetched when a token names a key id we do not hold (Entra rolls its keys over), but
at most once a minute, so tokens with made-up key ids cannot turn us into a load
generator against the tenant's key endpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from jwt import PyJWK, PyJWKSet

from .errors import AuthenticationError, SecurityUnavailableError

__all__ = ["EntraTokenValidator", "JwksKeys", "TokenIdentity"]

_ALGORITHMS = ["RS256"]
_SKEW_SECONDS = 60
_REFRESH_EVERY = 24 * 3600.0  # keys are refetched at least daily
_UNKNOWN_KID_PAUSE = 60.0  # and at most once a minute for an unknown key id


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """Who a valid token speaks for."""

    principal: str  # the calling app's id (azp/appid), or the user's object id (oid)
    tenant: str
    roles: frozenset[str]  # app roles granted in the token
    expires: datetime | None = None  # ``exp``: a console session opened with it ends then


class JwksKeys:
    """A tenant's signing keys, by key id."""

    def __init__(
        self,
        url: str,
        client: httpx.Client,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._client = client
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched = float("-inf")
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        try:
            response = self._client.get(self._url)
            response.raise_for_status()
            found = PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            raise SecurityUnavailableError(
                f"the token signing keys could not be read ({type(exc).__name__})"
            ) from exc
        self._keys = {k.key_id: k for k in found.keys if k.key_id}
        self._fetched = self._clock()

    def get(self, key_id: str) -> PyJWK | None:
        """The key with this id, refetching the set when stale or the id is new.

        Raises:
            SecurityUnavailableError: the key endpoint did not answer with a key set.
        """
        with self._lock:
            age = self._clock() - self._fetched
            if age > _REFRESH_EVERY or (key_id not in self._keys and age > _UNKNOWN_KID_PAUSE):
                self._fetch()
            return self._keys.get(key_id)


class EntraTokenValidator:
    """Validates v1 and v2 access tokens of one tenant for our API."""

    def __init__(
        self,
        tenant: str,
        audiences: list[str],
        keys: JwksKeys,
        authority: str = "https://login.microsoftonline.com",
    ) -> None:
        self._tenant = tenant
        self._audiences = audiences
        self._keys = keys
        self._issuers = [
            f"{authority.rstrip('/')}/{tenant}/v2.0",
            f"https://sts.windows.net/{tenant}/",
        ]

    def validate(self, token: str) -> TokenIdentity:
        """The identity a bearer token carries.

        Raises:
            AuthenticationError: not a token of this tenant for this API, expired, not yet
                valid, or badly signed (the message says which, never echoing the token).
            SecurityUnavailableError: the signing keys could not be fetched.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise AuthenticationError("the bearer token is not a JWT") from exc
        if header.get("alg") not in _ALGORITHMS:
            raise AuthenticationError("the bearer token is not signed with RS256")
        key = self._keys.get(str(header.get("kid") or ""))
        if key is None:
            raise AuthenticationError("the bearer token is signed with an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=_ALGORITHMS,
                audience=self._audiences,
                issuer=self._issuers,
                leeway=_SKEW_SECONDS,
                options={"require": ["exp", "nbf", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("the bearer token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthenticationError("the bearer token is not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationError("the bearer token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError("the bearer token is from another issuer") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(
                f"the bearer token is invalid ({type(exc).__name__})"
            ) from exc
        if claims.get("tid") not in (None, self._tenant):
            raise AuthenticationError("the bearer token is from another tenant")
        principal = claims.get("azp") or claims.get("appid") or claims.get("oid")
        if not isinstance(principal, str) or not principal:
            raise AuthenticationError("the bearer token names no application or user")
        roles = claims.get("roles") or []
        expires = claims.get("exp")
        return TokenIdentity(
            principal=principal,
            tenant=self._tenant,
            roles=frozenset(r for r in roles if isinstance(r, str)),
            expires=datetime.fromtimestamp(expires, UTC) if isinstance(expires, int) else None,
        )
