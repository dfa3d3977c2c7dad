"""Who is calling: a Microsoft Entra ID bearer token or a partner API key, as the
deployment allows, resolved to a partner and the roles it may use."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from .api_keys import parse_key
from .errors import AuthenticationError
from .models import Partner, Role
from .tokens import TokenIdentity

__all__ = ["Authenticator", "CallerDirectory", "TokenValidator"]


class CallerDirectory(Protocol):
    """Port: partners by API key and by Entra principal (``TablePartnerDirectory``)."""

    def authenticate(self, token: str) -> Partner | None:
        """The partner a presented key belongs to, or None."""

    def by_principal(self, principal: str) -> Partner | None:
        """The partner an app id or object id is registered to, or None."""


class TokenValidator(Protocol):
    """Port: bearer tokens to identities (``EntraTokenValidator``)."""

    def validate(self, token: str) -> TokenIdentity:
        """The identity a token carries, or AuthenticationError."""


class Authenticator:
    """Resolves a request's credentials to a partner.

    A token that carries app roles of ours (``ingest``, ``read``, ``admin``) narrows the
    partner's roles to those, so revoking an app role in Entra takes effect with the
    next token; a token without them leaves the partner's roles as registered.
    """

    def __init__(
        self,
        directory: CallerDirectory,
        entra: TokenValidator | None,
        *,
        api_keys: bool = True,
    ) -> None:
        self._directory = directory
        self._entra = entra
        self._api_keys = api_keys

    @property
    def schemes(self) -> list[str]:
        """What a 401 answer offers (``WWW-Authenticate``)."""
        return (["Bearer"] if self._entra else []) + (["X-API-Key"] if self._api_keys else [])

    def authenticate(self, authorization: str | None, api_key: str | None) -> Partner:
        """The calling partner.

        Raises:
            AuthenticationError: no credentials, or none that are valid here.
            SecurityUnavailableError, StorageUnavailableError: they cannot be checked now.
        """
        return self.identify(authorization, api_key)[0]

    def identify(
        self, authorization: str | None, api_key: str | None
    ) -> tuple[Partner, datetime | None]:
        """The calling partner, and when its credential stops being valid (a token's
        ``exp``; None for an API key, which lasts until revoked).

        Raises:
            AuthenticationError: no credentials, or none that are valid here.
            SecurityUnavailableError, StorageUnavailableError: they cannot be checked now.
        """
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            if self._entra is None:
                raise AuthenticationError(
                    "bearer tokens are not accepted by this deployment", "token"
                )
            try:
                identity = self._entra.validate(token.strip())
            except AuthenticationError as exc:
                raise AuthenticationError(str(exc), "token") from exc
            partner = self._directory.by_principal(identity.principal)
            if partner is None:
                raise AuthenticationError(
                    "the token's application is not registered as a partner",
                    f"token {identity.principal}",
                )
            ours = {Role(r) for r in identity.roles if r in Role._value2member_map_}
            narrowed = partner.model_copy(update={"roles": partner.roles & ours})
            return (narrowed if ours else partner), identity.expires
        if api_key:
            parsed = parse_key(api_key)
            credential = f"api-key {parsed[0]}" if parsed else "api-key"
            if not self._api_keys:
                raise AuthenticationError(
                    "API keys are not accepted by this deployment", credential
                )
            found = self._directory.authenticate(api_key)
            if found is not None:
                return found, None
            raise AuthenticationError("the API key is not valid", credential)
        wanted = " or ".join(
            (["an Authorization: Bearer token"] if self._entra else [])
            + (["a partner API key in X-API-Key"] if self._api_keys else [])
        )
        raise AuthenticationError(f"credentials are required: {wanted}")
