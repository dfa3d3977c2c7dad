"""Errors of consent checking.

IntakeError
└── ConsentError
    ├── ConsentInputError         a request or consent cannot be read (permanent: 4xx, exit 2)
    ├── QuestionForbiddenError    the caller may not ask about this person (permanent: 403)
    └── ConsentUnavailableError   the consent index did not answer (retryable; fails closed)
"""

from __future__ import annotations

from typing import Any

from shared.platform.errors import IntakeError

__all__ = [
    "ConsentError",
    "ConsentInputError",
    "ConsentUnavailableError",
    "QuestionForbiddenError",
]


class ConsentError(IntakeError):
    """Root of consent errors."""


class ConsentInputError(ConsentError):
    """A decision request or a Consent is not usable; ``location`` says where."""

    def __init__(self, diagnostics: str, location: str | None = None) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.location = location

    def to_operation_outcome(self) -> dict[str, Any]:
        """As a FHIR OperationOutcome."""
        where = f"{self.location}: " if self.location else ""
        issue = {"severity": "error", "code": "invalid", "diagnostics": where + self.diagnostics}
        return {"resourceType": "OperationOutcome", "issue": [issue]}


class ConsentUnavailableError(ConsentError):
    """The consents of a patient could not be read; nothing may pass until they can."""

    retryable = True


class QuestionForbiddenError(ConsentError):
    """A consent question about a person the caller may not read, or naming another
    partner as the actor; the same text whatever the reason, so it tells nothing."""
