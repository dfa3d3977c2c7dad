"""Secrets by name (webhook signing keys...): Key Vault in Azure, a local file in development.

Secrets never go into app settings, table rows or logs; rows hold only a secret's name.
"""

from __future__ import annotations

from typing import Protocol

from .errors import IntakeError

__all__ = ["SecretNotFoundError", "SecretStore", "SecretsUnavailableError"]


class SecretNotFoundError(IntakeError):
    """No secret has this name (deleted, or never written)."""


class SecretsUnavailableError(IntakeError):
    """The secret store did not answer (retryable)."""

    retryable = True


class SecretStore(Protocol):
    """Named secrets (``KeyVaultSecretStore``, ``FileSecretStore``)."""

    def get(self, name: str) -> str:
        """The secret's value.

        Raises:
            SecretNotFoundError, SecretsUnavailableError.
        """

    def set(self, name: str, value: str) -> None:
        """Create or replace a secret."""

    def delete(self, name: str) -> None:
        """Remove a secret; a missing one is not an error."""
