"""Security errors.

IntakeError
└── SecurityError            (permanent)
    ├── AuthenticationError  no valid credentials came with the request
    ├── UnknownPartnerError  a key was issued for a partner that does not exist
    └── SecurityUnavailableError  the identity provider's keys could not be read (retryable)
"""

from __future__ import annotations

from shared.platform.errors import IntakeError

__all__ = [
    "AuthenticationError",
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
    """The request carries no valid partner credentials."""


class SecurityUnavailableError(SecurityError):
    """Credentials could not be checked now (the token signing keys did not load)."""

    retryable = True
