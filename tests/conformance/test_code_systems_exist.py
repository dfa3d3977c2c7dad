"""Every code system a converted Bundle names exists (issue 19, the validator's class A):
a CodeSystem terminology.hl7.org or R4 publishes, a URI registered for an external
terminology (LOINC, SNOMED CT, UCUM, ...), an OID, or a partner's own local system.
Over the HL7 v2 corpora and the samples; skipped, with the reason, where they are absent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.normalize import NormalizationError
from shared.normalize.context import ConversionContext
from shared.normalize.hl7v2.terminology import _TABLE_0396
from shared.normalize.models import PayloadFormat
from shared.normalize.service import convert_payload
from tests.conftest import CORPUS, REPO

CTX = ConversionContext(partner="corpus", received=datetime(2026, 1, 1, tzinfo=UTC))
PACKAGES = (REPO / ".cache" / "tho" / "package", REPO / "node_modules" / "hl7.fhir.r4.examples")
THO = "http://terminology.hl7.org/CodeSystem/"
_LOCAL = ("urn:oid:", "urn:fhir-intake:partner:", "urn:ietf:bcp:47", "urn:iso:std:iso:")

pytestmark = pytest.mark.skipif(
    not (PACKAGES[0] / "package.json").is_file(),
    reason=f"terminology.hl7.org's package is not unpacked at {PACKAGES[0]} (make setup)",
)


def _published() -> set[str]:
    urls = set()
    for package in PACKAGES:
        for path in package.glob("CodeSystem-*.json"):
            urls.add(json.loads(path.read_text(encoding="utf-8"))["url"])
    return urls


def _coding_systems(value: Any) -> Iterator[str]:
    """``system`` of every Coding (a system with a code), not of Identifiers."""
    if isinstance(value, dict):
        if "system" in value and "code" in value and "value" not in value:
            yield value["system"]
        for item in value.values():
            yield from _coding_systems(item)
    elif isinstance(value, list):
        for item in value:
            yield from _coding_systems(item)


def test_every_code_system_we_emit_exists() -> None:
    inputs = sorted(CORPUS.glob("ms-fhir-converter/hl7v2/*.hl7"))
    inputs += sorted(CORPUS.glob("hl7v2-thirdparty/*/*.hl7"))
    if not inputs:
        pytest.skip(f"the HL7 v2 corpora are not under {CORPUS}")
    inputs += [
        REPO / "docs" / "samples" / n for n in ("adt-a01.hl7", "demo/oru-r01-heart-rate.hl7")
    ]
    published = _published() | set(_TABLE_0396.values())
    unknown: dict[str, str] = {}
    seen: set[str] = set()
    for path in inputs:
        try:
            bundle = convert_payload(path.read_bytes(), CTX, PayloadFormat.HL7V2).bundle
        except NormalizationError:
            continue
        for system in _coding_systems(bundle):
            seen.add(system)
            if system not in published and not system.startswith(_LOCAL):
                unknown.setdefault(system, path.name)
    assert not unknown
    assert len({s for s in seen if s.startswith(THO)}) >= 15  # the tables were exercised
    assert THO + "v2-0296" not in published  # the check knows what does not exist
