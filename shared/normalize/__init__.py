"""Normalization: partner formats (HL7 v2, FHIR JSON, C-CDA, CSV) into FHIR R4."""

from __future__ import annotations

from .errors import Issue, IssueCode, NormalizationError, Severity, operation_outcome

__all__ = ["Issue", "IssueCode", "NormalizationError", "Severity", "operation_outcome"]
