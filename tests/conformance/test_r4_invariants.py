"""R4's invariants (the FHIRPath constraints of its StructureDefinitions) hold on every
Bundle we produce: the 139 HL7 v2 corpus messages, the third-party messages we accept,
the fuzz reproducers and the shipped samples. 0 violations is the target; a constraint
the engine cannot evaluate fails the test unless listed here with the reason.

The checker (tests/support/r4_invariants.py) is itself checked: it finds each kind of
violation in resources written to break one, and none in R4's official examples.
Skipped, with the reason, where the R4 package or a corpus is absent.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.normalize import NormalizationError, json_codec
from shared.normalize.context import ConversionContext
from shared.normalize.models import PayloadFormat
from shared.normalize.service import convert_payload
from tests.conftest import CORPUS, REPO
from tests.support import r4_invariants

CTX = ConversionContext(partner="corpus", received=datetime(2026, 1, 1, tzinfo=UTC))
SAMPLES = REPO / "docs" / "samples"
# Constraints fhirpathpy cannot evaluate, and why that leaves nothing of ours unchecked.
UNEVALUABLE = {
    "txt-1": "htmlChecks() is not implemented; we write no narrative",
    "txt-2": "htmlChecks() is not implemented; we write no narrative",
    "dom-3": "fhirpathpy's 'as' on a collection; we write no contained resources",
}

pytestmark = pytest.mark.skipif(
    not r4_invariants.available(), reason=f"the R4 package is not at {r4_invariants.PACKAGE}"
)


def _hl7_inputs() -> Iterator[tuple[str, bytes]]:
    for folder in ("ms-fhir-converter/hl7v2", "hl7v2-thirdparty/*", "fuzz-reproducers"):
        for path in sorted(CORPUS.glob(f"{folder}/*.hl7")):
            yield f"{path.parent.name}/{path.name}", path.read_bytes()
    for name in ("adt-a01.hl7", "demo/oru-r01-heart-rate.hl7"):
        yield name, (SAMPLES / name).read_bytes()


def test_every_bundle_we_produce_meets_r4s_invariants() -> None:
    inputs = list(_hl7_inputs())
    if len(inputs) < 100:
        pytest.skip(f"the corpora are not under {CORPUS}")
    violations: dict[str, list[tuple[str, str]]] = {}
    unevaluable: dict[str, str] = {}
    evaluated = 0
    bundles = []
    for name, data in inputs:
        try:
            bundles.append((name, convert_payload(data, CTX, PayloadFormat.HL7V2).bundle))
        except NormalizationError:
            continue  # refusals are the corpus tests' business
    for mapping in ("rpm-vitals", "lab-results"):
        data = (SAMPLES / f"{mapping}.csv").read_bytes()
        bundles.append(
            (mapping, convert_payload(data, CTX, PayloadFormat.CSV, mapping=mapping).bundle)
        )
    for name, bundle in bundles:
        report = r4_invariants.check(json_codec.loads(json_codec.dumps(bundle)))
        evaluated += report.evaluated
        unevaluable.update(report.unevaluable)
        if report.violations:
            violations[name] = report.violations[:5]
    assert evaluated > 10_000  # the constraints were evaluated, not skipped
    assert not violations
    assert set(unevaluable) <= set(UNEVALUABLE), unevaluable


OBSERVATION = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-03-01T10:00:00Z",
    "valueQuantity": {
        "value": 72,
        "unit": "/min",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    },
}


def _broken(change: dict[str, Any], base: dict[str, Any] = OBSERVATION) -> dict[str, Any]:
    resource = copy.deepcopy(base)
    resource.update(change)
    return resource


@pytest.mark.parametrize(
    ("key", "resource"),
    [
        ("obs-6", _broken({"dataAbsentReason": {"text": "unknown"}})),
        ("obs-7", _broken({"component": [{"code": OBSERVATION["code"], "valueString": "x"}]})),
        ("per-1", _broken({"effectivePeriod": {"start": "2026-03-02", "end": "2026-03-01"},
                           "effectiveDateTime": None})),
        ("ext-1", _broken({"extension": [{"url": "http://x.org/e", "valueString": "a",
                                          "extension": [{"url": "b", "valueString": "c"}]}]})),
        ("ele-1", _broken({"note": [{}]})),
        ("ref-1", _broken({"subject": {"reference": "#missing"}})),
        ("pat-1", {"resourceType": "Patient", "id": "p1", "contact": [{"gender": "male"}]}),
        ("bdl-7", {"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "a"}},
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "a"}}]}),
    ],
)  # fmt: skip
def test_the_checker_finds_each_kind_of_violation(key: str, resource: dict[str, Any]) -> None:
    resource = {k: v for k, v in resource.items() if v is not None}
    keys = {k for k, _ in r4_invariants.check(resource).violations}
    assert key in keys
    assert not {k for k, _ in r4_invariants.check(OBSERVATION).violations}


@pytest.mark.parametrize("kind", ["Observation", "Patient", "Encounter", "Immunization"])
def test_the_checker_finds_nothing_in_r4s_own_examples(kind: str) -> None:
    examples = sorted(r4_invariants.PACKAGE.glob(f"{kind}-*.json"))
    assert examples
    for path in examples:
        resource = json_codec.loads(path.read_bytes())
        assert r4_invariants.check(resource).violations == [], path.name
