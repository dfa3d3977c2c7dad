"""Links are written with a configured origin, never with the caller's Host header."""

from __future__ import annotations

import pytest

from shared.platform.errors import ConfigurationError
from shared.platform.public_url import public_url

ORIGINS = ("https://intake.example.org", "https://fi-prod.azurewebsites.net")


def test_a_configured_origin_is_kept_and_any_other_replaced() -> None:
    asked = "https://FI-PROD.azurewebsites.net/api/fhir/metadata?x=1"
    assert public_url(asked, ORIGINS, development=False) == (
        "https://fi-prod.azurewebsites.net/api/fhir/metadata?x=1"
    )
    forged = "https://evil.example/api/fhir/Observation?patient=p1"
    assert public_url(forged, ORIGINS, development=True) == (
        "https://intake.example.org/api/fhir/Observation?patient=p1"
    )


def test_only_development_reflects_the_request_when_nothing_is_configured() -> None:
    local = "http://127.0.0.1:7071/api/openapi.json"
    assert public_url(local, (), development=True) == local
    with pytest.raises(ConfigurationError, match="INTAKE_PUBLIC_BASE_URL"):
        public_url(local, (), development=False)
