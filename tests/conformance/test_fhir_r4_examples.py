"""The official FHIR R4 examples (npm hl7.fhir.r4.examples@4.0.1, CC0, installed by
`make setup`): each is accepted, or rejected with a located, worded reason.

Known reasons for rejection: resource types and elements that R4B (the models
fhir.resources validates R4 with) dropped or renamed, and a few examples that break
their own invariants. The counts are recorded in the test report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.normalize import NormalizationError
from shared.normalize.context import ConversionContext
from shared.normalize.fhir_json import convert_fhir_json
from tests.conftest import REPO

EXAMPLES = REPO / "node_modules" / "hl7.fhir.r4.examples"
FILES = (
    sorted(p for p in EXAMPLES.glob("*.json") if p.name != "package.json")
    if EXAMPLES.is_dir()
    else []
)

pytestmark = pytest.mark.skipif(
    not FILES, reason=f"FHIR R4 examples not installed at {EXAMPLES} (make setup installs them)"
)


def test_every_example_is_accepted_or_rejected_with_a_reason(record_property) -> None:  # type: ignore[no-untyped-def]
    ctx = ConversionContext(partner="examples")
    accepted, rejected = 0, 0
    unexplained: list[str] = []
    for path in FILES:
        try:
            result = convert_fhir_json(path.read_bytes(), ctx)
        except NormalizationError as exc:
            rejected += 1
            if not all(i.diagnostics and i.location for i in exc.issues):
                unexplained.append(path.name)
            continue
        accepted += 1
        assert result.bundle["entry"], path.name
        for rejection in result.rejected:
            if not all(i.diagnostics and i.location for i in rejection.issues):
                unexplained.append(f"{path.name} {rejection.location}")
    record_property("accepted", accepted)
    record_property("rejected", rejected)
    print(f"\nFHIR R4 examples: {accepted} accepted, {rejected} rejected of {len(FILES)}")
    assert not unexplained
    assert accepted + rejected == len(FILES) > 5000
    assert accepted / len(FILES) > 0.98  # rejections are the exceptions listed above


def _sample(name: str) -> Path:
    return EXAMPLES / name


@pytest.mark.parametrize(
    "name",
    [
        "Patient-example.json",
        "Observation-example.json",
        "Bundle-bundle-example.json",
        "Consent-consent-example-Out.json",
    ],
)
def test_well_known_examples_are_accepted(name: str) -> None:
    result = convert_fhir_json(_sample(name).read_bytes(), ConversionContext(partner="examples"))
    assert result.resource_count >= 2  # the resource(s) and the Provenance


def test_a_transaction_that_reads_or_deletes_is_rejected_with_the_entries_named() -> None:
    with pytest.raises(NormalizationError) as caught:
        convert_fhir_json(
            _sample("Bundle-bundle-transaction.json").read_bytes(),
            ConversionContext(partner="examples"),
        )
    located = {i.location for i in caught.value.issues[1:]}
    assert located == {f"$.entry[{n}].request.method" for n in (5, 6, 8, 9)}
    assert "DELETE entries are not accepted" in caught.value.issues[1].diagnostics
