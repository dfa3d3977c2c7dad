"""Errors of the platform layer, under the project-wide root ``IntakeError``.

IntakeError
├── ConfigurationError        settings missing or invalid (permanent)
├── StorageUnavailableError   storage did not answer (retryable)
└── EnvelopeError             a queue message is not a valid envelope (permanent)
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "EnvelopeError", "IntakeError", "StorageUnavailableError"]


class IntakeError(Exception):
    """Root of every error fhir-intake raises on purpose."""

    retryable: bool = False


class ConfigurationError(IntakeError):
    """A required setting is missing or invalid."""


class StorageUnavailableError(IntakeError):
    """Azure Storage could not be reached or refused the call."""

    retryable = True


class EnvelopeError(IntakeError):
    """A queue message could not be read as an envelope."""
