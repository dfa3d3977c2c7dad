"""The CapabilityStatement lists every resource type our converters write: a type a
converter starts writing without it would be served but not declared."""

from __future__ import annotations

import re
from pathlib import Path

from shared.records.capability import capability_statement

_WRITTEN = re.compile(r'"resourceType": "([A-Za-z]+)"')
_NOT_STORED = {"Bundle", "OperationOutcome"}  # envelopes and answers, never records


def test_every_type_a_converter_writes_is_declared() -> None:
    source = Path(__file__).resolve().parents[3] / "shared" / "normalize"
    written = {
        kind
        for path in source.rglob("*.py")
        for kind in _WRITTEN.findall(path.read_text(encoding="utf-8"))
    } - _NOT_STORED
    assert {"PractitionerRole", "Specimen", "Patient"} <= written  # the scan found them
    statement = capability_statement("https://fhir.example/api/fhir", "1")
    declared = {r["type"] for r in statement["rest"][0]["resource"]}
    assert written - declared == set()
