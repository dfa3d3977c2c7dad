"""The fast output checks catch what a converter bug would break."""

from __future__ import annotations

from typing import Any

import pytest

from shared.normalize import NormalizationError
from shared.normalize.checks import check_bundle


def _bundle(resource: dict[str, Any], url: str | None = None) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": resource,
                "request": {
                    "method": "PUT",
                    "url": url or f"{resource.get('resourceType')}/{resource.get('id')}",
                },
            }
        ],
    }


def test_a_good_bundle_passes() -> None:
    check_bundle(
        _bundle(
            {
                "resourceType": "Observation",
                "id": "o1",
                "status": "final",
                "subject": {"reference": "Patient/p1"},
                "performer": [{"reference": "https://other.example/fhir/Practitioner/9"}],
            }
        )
    )


@pytest.mark.parametrize(
    ("bundle", "words"),
    [
        (_bundle({"resourceType": "Patient", "id": "bad id!"}), "valid type and id"),
        (_bundle({"resourceType": "Patient", "id": "p1"}, "Patient/p2"), "request.url"),
        (_bundle({"resourceType": "Patient", "id": "p1", "gender": "F"}), "required value set"),
    ],
)
def test_converter_bugs_are_caught(bundle: dict[str, Any], words: str) -> None:
    with pytest.raises(NormalizationError) as caught:
        check_bundle(bundle)
    assert words in caught.value.issues[0].diagnostics
