"""C-CDA (CDA R2) documents into FHIR R4: a hardened parser, the ``ccda-to-fhir``
library behind our adapter, and our ids, checks and report."""

from __future__ import annotations

from .converter import convert_ccda
from .xml_safety import MAX_CCDA_BYTES, is_clinical_document, parse_document

__all__ = ["MAX_CCDA_BYTES", "convert_ccda", "is_clinical_document", "parse_document"]
