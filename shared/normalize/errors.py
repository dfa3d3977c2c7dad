"""Errors of normalization; each carries issues that become a FHIR OperationOutcome.

IntakeError
└── NormalizationError   the input cannot become FHIR (permanent: quarantine, no retry)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.platform.errors import IntakeError

__all__ = ["Issue", "IssueCode", "NormalizationError", "Severity", "operation_outcome"]


class Severity(StrEnum):
    """OperationOutcome.issue.severity (required binding)."""

    FATAL = "fatal"
    ERROR = "error"
    WARNING = "warning"
    INFORMATION = "information"


class IssueCode(StrEnum):
    """The OperationOutcome.issue.code values we use (IssueType, required binding)."""

    STRUCTURE = "structure"  # the input's syntax is broken
    REQUIRED = "required"  # something that must be there is missing
    VALUE = "value"  # a value is not allowed
    INVALID = "invalid"
    NOT_SUPPORTED = "not-supported"
    CODE_INVALID = "code-invalid"
    TOO_COSTLY = "too-costly"
    TOO_LONG = "too-long"  # content over a size limit (a denial-of-service guard)
    INFORMATIONAL = "informational"


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding, with where in the input it is (``PID-3[2].4``, ``line 4``, ``$.entry[0]``)."""

    code: IssueCode
    diagnostics: str
    location: str | None = None
    severity: Severity = Severity.ERROR

    def to_fhir(self) -> dict[str, Any]:
        """This issue as an ``OperationOutcome.issue`` element."""
        issue: dict[str, Any] = {
            "severity": self.severity.value,
            "code": self.code.value,
            "diagnostics": self.diagnostics,
        }
        if self.location:
            issue["location"] = [self.location]
        return issue


def operation_outcome(issues: Sequence[Issue]) -> dict[str, Any]:
    """A FHIR R4 OperationOutcome resource (as JSON-ready dict) for these issues."""
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


class NormalizationError(IntakeError):
    """The input cannot be converted; ``issues`` say where and why."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        if not issues:
            raise ValueError("a NormalizationError needs at least one issue")
        self.issues = tuple(issues)
        first = self.issues[0]
        where = f"{first.location}: " if first.location else ""
        super().__init__(f"{where}{first.diagnostics}")

    @classmethod
    def at(
        cls, location: str | None, diagnostics: str, code: IssueCode = IssueCode.STRUCTURE
    ) -> NormalizationError:
        """An error with a single issue."""
        return cls([Issue(code=code, diagnostics=diagnostics, location=location)])

    def to_operation_outcome(self) -> dict[str, Any]:
        """The OperationOutcome to return to the partner or store in quarantine."""
        return operation_outcome(self.issues)
