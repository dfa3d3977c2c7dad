"""The authorization matrix: every HTTP route of the app against every kind of caller,
on the local host with Entra ID (a JWKS stand-in on loopback) and API keys both on.

Callers: none, a bad API key, a bad bearer token, an expired token, a token for another
audience, a token of an app no partner is registered with, a partner with the wrong
role, another partner (for what one partner owns), and the right caller, by key and by
token. A route added to the app without a row here fails the completeness test.

The trust model's roles are in it too (population, consent source, registry,
break-the-glass), and the relationship rule: a read-role partner without a relationship
gets 404 for a patient that exists, the same answer as for one that does not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.security import Partner
from shared.security.models import Role
from tests.e2e.conftest import product_api
from tests.support.app_routes import http_routes
from tests.support.entra_stub import AUDIENCE, TENANT, Entra, entra_stub

pytestmark = pytest.mark.azurite

FUNCTION_KEY = "fk-authz"
ORU = (
    b"MSH|^~\\&|LAB|ACME|EHR|HOSP|20260301101500||ORU^R01^ORU_R01|CTRL-A1|P|2.5.1\r"
    b"PID|1||MRN-A1^^^ACME^MR||Doe^Jane||19700101|F\r"
    b"OBR|1|P-A1|F-A1|24331-1^Lipid panel^LN|||20260301080000||||||||||||||||||F\r"
    b"OBX|1|NM|2093-3^Cholesterol^LN||195|mg/dL^mg/dL^UCUM|||||F|||20260301080000\r"
)
PARTNERS = {
    "ingester": frozenset({Role.INGEST}),
    "ingester2": frozenset({Role.INGEST}),
    "reader": frozenset({Role.READ}),
    "other": frozenset({Role.READ}),
    "operator": frozenset({Role.ADMIN}),
    "population": frozenset({Role.POPULATION}),
    "consents": frozenset({Role.CONSENT_SOURCE}),
    "registry": frozenset({Role.REGISTRY}),
    "glass": frozenset({Role.READ, Role.BREAK_GLASS}),
}
READ = frozenset({"read", "population", "admin"})  # within each one's read scope
POPULATION = frozenset({"population", "admin"})
EVALUATE = {
    "resourceType": "Parameters",
    "parameter": [
        {"name": "patient", "valueReference": {"reference": "Patient/p-authz"}},
        {"name": "action", "valueCode": "access"},
        {"name": "purpose", "valueCode": "TREAT"},
    ],
}


@dataclass(frozen=True)
class Case:
    function: str
    method: str
    path: str  # {ingestion}, {subscription}, {job}: objects their owner created
    roles: frozenset[str] | None  # None: anonymous
    owner: str | None = None  # the partner owning the object in the path
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    fresh: bool = False  # destructive: the right caller acts on a fresh object
    caller: str | None = None  # who answers for the right role, when not the first holder


CASES = [
    Case("health", "GET", "/health", None),
    Case("openapi", "GET", "/openapi.json", None),
    Case("intake_request_schema_document", "GET", "/schemas/intake-request", None),
    Case("fhir_metadata", "GET", "/fhir/metadata", None),
    Case("cds_discovery", "GET", "/cds-services", None),
    Case(
        "ingest",
        "POST",
        "/ingest",
        frozenset({"ingest"}),
        body=ORU,
        headers={"content-type": "x-application/hl7-v2+er7"},
    ),
    Case("ingestion_status", "GET", "/ingest/{ingestion}", frozenset({"ingest"}), owner="ingester"),
    Case(
        "ingestion_ack", "GET", "/ingest/{ingestion}/ack", frozenset({"ingest"}), owner="ingester"
    ),
    Case(
        "ingest_upload",
        "POST",
        "/ingest/uploads",
        frozenset({"ingest"}),
        body={"filename": "a.csv"},
    ),
    Case(
        "consent_evaluate",
        "POST",
        "/consent/$evaluate",
        frozenset({"read", "admin"}),
        body=EVALUATE,
        headers={"content-type": "application/fhir+json"},
        caller="operator",  # a reader may ask only about its own patients (test_consent_stage)
    ),
    Case(
        "cds_consent_consult",
        "POST",
        "/cds-services/patient-consent-consult",
        frozenset({"read", "admin"}),
        body={"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p-authz"}},
        caller="operator",
    ),
    Case("fhir_read", "GET", "/fhir/Patient/p-authz", READ),
    Case("fhir_vread", "GET", "/fhir/Patient/p-authz/_history/1", READ),
    Case("fhir_history", "GET", "/fhir/Patient/p-authz/_history", READ),
    Case("fhir_search", "GET", "/fhir/Observation?patient=p-authz", READ),
    Case("fhir_everything", "GET", "/fhir/Patient/p-authz/$everything", READ),
    Case("fhir_purge", "POST", "/fhir/Patient/p-authz-gone/$purge", frozenset({"admin"})),
    Case(
        "fhir_unlink",
        "POST",
        "/fhir/Patient/p-authz/$unlink",
        frozenset({"admin"}),
        body={
            "resourceType": "Parameters",
            "parameter": [{"name": "other", "valueString": "Patient/p-x"}],
        },
    ),
    Case("export_system", "GET", "/fhir/$export", POPULATION, headers={"prefer": "respond-async"}),
    Case(
        "export_patients", "GET", "/fhir/Patient/$export", READ, headers={"prefer": "respond-async"}
    ),
    Case("export_status", "GET", "/fhir/$export-status/{job}", READ, owner="reader"),
    Case("export_status", "DELETE", "/fhir/$export-status/{job}", READ, owner="reader", fresh=True),
    Case("export_file", "GET", "/fhir/$export-file/{job}/Patient.ndjson", READ, owner="reader"),
    Case(
        "subscription_create",
        "POST",
        "/subscriptions",
        READ,
        body={"criteria": "Observation", "endpoint": "http://127.0.0.1:9/hook"},
    ),
    Case("subscription_list", "GET", "/subscriptions", READ),
    Case("audit_search", "GET", "/audit/AuditEvent?agent=reader", frozenset({"admin"})),
    Case("subscription_one", "GET", "/subscriptions/{subscription}", READ, owner="reader"),
    Case(
        "subscription_one",
        "PATCH",
        "/subscriptions/{subscription}",
        READ,
        owner="reader",
        body={"status": "active"},
    ),
    Case(
        "subscription_one",
        "DELETE",
        "/subscriptions/{subscription}",
        READ,
        owner="reader",
        fresh=True,
    ),
    Case(
        "subscription_rotate",
        "POST",
        "/subscriptions/{subscription}/$rotate-secret",
        READ,
        owner="reader",
    ),
    Case(
        "subscription_replay", "POST", "/subscriptions/{subscription}/$replay", frozenset({"admin"})
    ),
]


@pytest.fixture(scope="module")
def world(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("authz")
    partners = [
        Partner(id=name, name=name.title(), roles=roles, principals=frozenset({f"app-{name}"}))
        for name, roles in PARTNERS.items()
    ]
    with entra_stub() as entra:
        env = {
            "INTAKE_AUTH_ENTRA_TENANT_ID": TENANT,
            "INTAKE_AUTH_ENTRA_AUDIENCE": AUDIENCE,
            "INTAKE_AUTH_ENTRA_AUTHORITY": entra.authority,
            "INTAKE_LOCAL_SECRETS_FILE": str(tmp / "secrets.json"),
        }
        with product_api(azurite, tmp, partners, FUNCTION_KEY, env) as api:
            world = {"api": api, "entra": entra}
            world["ingestion"] = send(
                world,
                Case(
                    "",
                    "POST",
                    "/ingest",
                    None,
                    body=ORU,
                    headers={"content-type": "x-application/hl7-v2+er7"},
                ),
                key("ingester", api),
            ).json()["id"]
            world["subscription"] = make_subscription(world)
            world["job"] = make_job(world)
            yield world


def key(partner: str, api: dict[str, Any]) -> dict[str, str]:
    return {"x-api-key": api["keys"][partner]}


def token(world: dict[str, Any], partner: str, **claims: Any) -> dict[str, str]:
    entra: Entra = world["entra"]
    return {"authorization": f"Bearer {entra.token(f'app-{partner}', **claims)}"}


def send(world: dict[str, Any], case: Case, auth: dict[str, str], **ids: str) -> Any:
    path = case.path.format(
        **{**{k: world.get(k, "") for k in ("ingestion", "subscription", "job")}, **ids}
    )
    body = case.body
    content = (
        body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    )
    headers = {"content-type": "application/json", **case.headers, **auth}
    return world["api"]["client"].request(case.method, path, content=content, headers=headers)


def make_subscription(world: dict[str, Any]) -> str:
    created = send(world, CASES_BY[("subscription_create", "POST")], key("reader", world["api"]))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def make_job(world: dict[str, Any]) -> str:
    started = send(world, CASES_BY[("export_patients", "GET")], key("reader", world["api"]))
    assert started.status_code == 202, started.text
    return str(started.headers["content-location"].rsplit("/", 1)[1])


CASES_BY = {(c.function, c.method): c for c in CASES}


def ids(case: Case) -> str:
    return f"{case.function}-{case.method}"


def test_every_http_route_is_in_the_matrix() -> None:
    # The console's pages sign in once and then carry a session, not a credential on each
    # request: their rules are tested route by route in test_console.py.
    routes = {(name, method) for name, method, _ in http_routes()}
    console = {r for r in routes if r[0].startswith("console_")}
    assert console and routes - console == set(CASES_BY)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_without_valid_credentials_nobody_gets_in(world: dict[str, Any], case: Case) -> None:
    now = int(time.time())
    callers = {
        "none": {},
        "bad key": {"x-api-key": "fik_" + "0" * 16 + "_" + "a" * 43},
        "malformed key": {"x-api-key": "not-a-key"},
        "bad token": {"authorization": "Bearer not.a.jwt"},
        "expired token": token(world, "operator", exp=now - 3600, nbf=now - 7200),
        "wrong audience": token(world, "operator", aud="api://someone-else"),
        "unregistered app": token(world, "nobody"),
    }
    for label, auth in callers.items():
        answer = send(world, case, auth)
        if case.roles is None:
            assert answer.status_code < 400, (label, answer.status_code)
            continue
        assert answer.status_code == 401, (label, answer.status_code, answer.text)
        assert answer.json()["resourceType"] == "OperationOutcome"
        assert "Bearer" in answer.headers.get("www-authenticate", "")


@pytest.mark.parametrize("case", [c for c in CASES if c.roles], ids=ids)
def test_the_wrong_role_is_forbidden(world: dict[str, Any], case: Case) -> None:
    assert case.roles is not None
    for name, roles in PARTNERS.items():
        if not {r.value for r in roles} & case.roles:
            for auth in (key(name, world["api"]), token(world, name)):
                answer = send(world, case, auth)
                assert answer.status_code == 403, (name, answer.status_code, answer.text)


@pytest.mark.parametrize("case", [c for c in CASES if c.owner], ids=ids)
def test_another_partner_sees_nothing(world: dict[str, Any], case: Case) -> None:
    other = {"ingester": "ingester2", "reader": "other"}[case.owner or ""]
    for auth in (key(other, world["api"]), token(world, other)):
        answer = send(world, case, auth)
        assert answer.status_code == 404, (other, answer.status_code, answer.text)


@pytest.mark.parametrize("case", [c for c in CASES if c.roles], ids=ids)
def test_the_right_caller_gets_an_answer(world: dict[str, Any], case: Case) -> None:
    assert case.roles is not None
    name = (
        case.caller
        or case.owner
        or next(n for n, r in PARTNERS.items() if {x.value for x in r} & case.roles)
    )
    for auth in (key(name, world["api"]), token(world, name)):
        fresh = {}
        if case.fresh:
            fresh = {"subscription": make_subscription(world), "job": make_job(world)}
        answer = send(world, case, auth, **fresh)
        assert answer.status_code not in (401, 403) and answer.status_code < 500, (
            name,
            answer.status_code,
            answer.text,
        )


def test_app_roles_in_a_token_narrow_a_partner(world: dict[str, Any]) -> None:
    case = CASES_BY[("fhir_purge", "POST")]
    narrowed = token(world, "operator", roles=["read"])  # Entra granted this app only read
    assert send(world, case, narrowed).status_code == 403
    assert send(world, case, token(world, "operator", roles=["admin"])).status_code != 403


def _stored_patient(world: dict[str, Any]) -> str:
    """The id of the ORU's Patient once the pipeline stored it (the ingester's)."""
    from shared.normalize.ids import local_system, patient_id
    from tests.e2e.conftest import wait_stage

    wait_stage(world["api"], "ingester", world["ingestion"], "store")
    return patient_id("ingester", local_system("ingester", "ACME"), "MRN-A1")


def test_a_reader_without_a_relationship_gets_404_for_a_patient_that_exists(
    world: dict[str, Any],
) -> None:
    from datetime import UTC, datetime

    from shared.platform.names import Table
    from shared.records.adapters import TablePersonIndex

    patient = _stored_patient(world)
    path = f"/fhir/Patient/{patient}"
    api = world["api"]

    def status(partner: str, purpose: str | None = None, by_token: bool = False) -> int:
        auth = token(world, partner) if by_token else key(partner, api)
        headers = {**auth, **({"x-purpose-of-use": purpose} if purpose else {})}
        return int(api["client"].get(path, headers=headers).status_code)

    absent = api["client"].get("/fhir/Patient/no-such-patient", headers=key("reader", api))
    assert status("reader") == absent.status_code == 404  # exists, but no relationship
    assert status("reader", by_token=True) == 404
    assert api["client"].get(path, headers=key("reader", api)).json() == absent.json()
    assert status("population") == 200  # (an operator reaches everyone too, for HOPERAT,
    # which the default opt-out policy does not permit: issue 23's question)
    assert status("glass") == 404  # break-the-glass needs an emergency purpose...
    assert status("glass", "ETREAT") == 200  # ...and the grant
    assert status("reader", "ETREAT") == 404  # no grant, no glass to break
    assert status("reader", "HMARKT") == 403  # a purpose it is not registered for
    clients = api["clients"]
    people = TablePersonIndex(
        clients.table_client(Table.COMPARTMENTS), clients.table_client(Table.IDENTIFIERS)
    )
    people.relate(patient, "reader", datetime.now(UTC))  # what `intake partners relate` does
    assert status("reader") == 200 and status("reader", by_token=True) == 200
    assert status("other") == 404  # a relationship is the partner's, not everyone's
    people.unrelate(patient, "reader")
    assert status("reader") == 404


def test_system_export_needs_the_population_role(world: dict[str, Any]) -> None:
    case = CASES_BY[("export_system", "GET")]
    for partner in ("reader", "glass"):
        answer = send(world, case, key(partner, world["api"]))
        assert answer.status_code == 403 and "population role" in answer.text
    assert send(world, case, key("population", world["api"])).status_code == 202
