"""A schemathesis run against the local host: generated requests for every operation of
/api/openapi.json (valid and invalid parameters, bodies and headers), with a partner
holding every role. No answer may be a 5xx, and every answer must fit the document
(status, content type, schema: every refusal an OperationOutcome)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from shared.security import Partner
from shared.security.models import Role
from tests.e2e.conftest import product_api
from tests.support.app_routes import http_routes

pytestmark = pytest.mark.azurite
FUNCTION_KEY = "fk-fuzz"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))  # per operation; `make fuzz`: 300
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    everyone = Partner(id="fuzzer", name="Fuzzer", roles=frozenset(Role))
    env = {"INTAKE_LOCAL_SECRETS_FILE": str(tmp / "secrets.json")}
    with product_api(azurite, tmp, [everyone], FUNCTION_KEY, env) as api:
        yield api


@pytest.fixture(scope="module")
def api_schema(api: dict[str, Any]) -> Any:
    document = api["client"].get("/openapi.json").json()
    loaded = schemathesis.openapi.from_dict(document)
    loaded.config.update(base_url=document["servers"][0]["url"])
    return loaded


def test_the_document_covers_every_route(api: dict[str, Any]) -> None:
    document = api["client"].get("/openapi.json").json()
    described = {
        (path, method.upper()) for path, ops in document["paths"].items() for method in ops
    }
    # The console's pages are HTML for people, signed in by session: not API operations
    # (test_console.py covers each of them).
    routes = {
        ("/" + route.replace("{id:guid}", "{id}").replace("{vid:int}", "{vid}"), method)
        for _, method, route in http_routes()
        if route != "console" and not route.startswith("console/")
    }
    assert routes == described


def test_no_server_errors_and_answers_fit_the_document(
    api: dict[str, Any], api_schema: Any
) -> None:
    """Each operation gets its own generated cases; every failure is collected, so one
    run reports all the operations that break the contract."""
    headers = {"x-functions-key": FUNCTION_KEY, "x-api-key": api["keys"]["fuzzer"]}
    failures: dict[str, str] = {}
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any) -> None:
            response = case.call(headers={**(case.headers or {}), **headers})
            case.validate_response(response, checks=CHECKS)

        try:
            exercise()
        except AssertionError as exc:  # schemathesis reports failed checks as these
            failures[operation.label] = str(exc)[:2000]
    assert operations >= 25
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
