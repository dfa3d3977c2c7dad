"""Security errors.

IntakeError
└── SecurityError            (permanent)
    ├── AuthenticationError  no valid credentials came with the request
    ├── UnknownPartnerError  a key was issued for a partner that does not exist
    ├── PrincipalTakenError  an Entra principal is registered to another partner
    └── SecurityUnavailableError  the identity provider's keys could not be read (retryable)
"""

from __future__ import annotations

from shared.platform.errors import IntakeError

__all__ = [
    "AuthenticationError",
    "PrincipalTakenError",
    "SecurityError",
    "SecurityUnavailableError",
    "UnknownPartnerError",
]


class SecurityError(IntakeError):
    """A security rule was broken or cannot be checked."""


class UnknownPartnerError(SecurityError):
    """No partner has this id."""

    def __init__(self, partner_id: str) -> None:
        super().__init__(f"no partner with id {partner_id!r}")
        self.partner_id = partner_id


class AuthenticationError(SecurityError):
    """The request carries no valid partner credentials.

    ``credential`` says what came instead, for the audit trail: ``api-key <key id>``,
    ``token <principal>`` (validated, but not registered), ``api-key``, ``token`` or
    ``none`` (never a secret).
    """

    def __init__(self, message: str, credential: str = "none") -> None:
        super().__init__(message)
        self.credential = credential


class SecurityUnavailableError(SecurityError):
    """Credentials could not be checked now (the token signing keys did not load)."""

    retryable = True


class PrincipalTakenError(SecurityError):
    """An Entra app or object id may belong to one partner only."""

    def __init__(self, principal: str, owner: str) -> None:
        super().__init__(f"principal {principal} is registered to partner {owner!r}")
        self.principal = principal
        self.owner = owner
