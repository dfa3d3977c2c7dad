"""Resolving credentials to a partner: bearer tokens, API keys, what each deployment allows."""

from __future__ import annotations

import pytest

from shared.security.callers import Authenticator
from shared.security.errors import AuthenticationError
from shared.security.models import Partner, Role
from shared.security.tokens import TokenIdentity

LAB = Partner(
    id="lab",
    name="Lab",
    roles=frozenset({Role.INGEST, Role.READ}),
    principals=frozenset({"app-lab"}),
)


class Directory:
    def authenticate(self, token: str) -> Partner | None:
        return LAB if token == "fik_good" else None

    def by_principal(self, principal: str) -> Partner | None:
        return LAB if principal in LAB.principals else None


class Tokens:
    """Accepts ``good:<principal>[:role,...]``; refuses anything else like Entra would."""

    def validate(self, token: str) -> TokenIdentity:
        kind, _, rest = token.partition(":")
        if kind != "good":
            raise AuthenticationError("the bearer token has expired")
        principal, _, roles = rest.partition(":")
        return TokenIdentity(principal, "tenant", frozenset(r for r in roles.split(",") if r))


def test_bearer_tokens_map_to_the_registered_partner() -> None:
    auth = Authenticator(Directory(), Tokens())
    assert auth.authenticate("Bearer good:app-lab", None) == LAB
    with pytest.raises(AuthenticationError, match="not registered"):
        auth.authenticate("Bearer good:app-unknown", None)
    with pytest.raises(AuthenticationError, match="expired"):
        auth.authenticate("Bearer bad", None)


def test_app_roles_in_the_token_narrow_the_partners_roles() -> None:
    auth = Authenticator(Directory(), Tokens())
    assert auth.authenticate("Bearer good:app-lab:read", None).roles == {Role.READ}
    assert auth.authenticate("Bearer good:app-lab:admin", None).roles == frozenset()  # never widen
    assert auth.authenticate("Bearer good:app-lab:Other.Role", None).roles == LAB.roles


def test_api_keys_and_what_a_deployment_turns_off() -> None:
    both = Authenticator(Directory(), Tokens())
    assert both.authenticate(None, "fik_good") == LAB
    with pytest.raises(AuthenticationError, match="not valid"):
        both.authenticate(None, "fik_bad")
    with pytest.raises(AuthenticationError, match="Bearer token or a partner API key"):
        both.authenticate(None, None)
    assert both.schemes == ["Bearer", "X-API-Key"]
    keys_only = Authenticator(Directory(), None)
    with pytest.raises(AuthenticationError, match="not accepted"):
        keys_only.authenticate("Bearer good:app-lab", None)
    tokens_only = Authenticator(Directory(), Tokens(), api_keys=False)
    with pytest.raises(AuthenticationError, match="not accepted"):
        tokens_only.authenticate(None, "fik_good")
    assert tokens_only.schemes == ["Bearer"]
