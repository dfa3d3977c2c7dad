"""OpenTelemetry end to end: the product on the local host exports OTLP/HTTP to a collector
stand-in on loopback (tests/support/otlp_collector.py); one HL7 ADT^A01 whose PID carries
canary identifying values goes from POST /api/ingest to a subscriber's webhook, and what
arrived is one trace (ingest, normalize, consent-check, notify, deliver, each span the
child of the one before across the queue hops), our attributes on each span, every metric
we define, log records in the trace, and not one canary value anywhere."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.normalize.ids import local_system, patient_id
from shared.notify.stage import SUBSCRIPTIONS_REFRESH_SECONDS
from shared.platform.names import Table
from shared.platform.telemetry import METRICS
from shared.records.adapters import TablePersonIndex
from shared.security import Partner
from shared.security.models import Role
from tests.e2e.conftest import product_api
from tests.support.otlp_collector import Collector, Span, otlp_collector
from tests.support.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.azurite

FAMILY, GIVEN, MRN, PHONE = "Zyxotelcanary", "Qwertelia", "OTELMRN55120", "5550177"
CANARIES = [FAMILY, GIVEN, MRN, PHONE, "19390521", "1939-05-21", "Otelvale"]
# Synthetic: a minimal ADT^A01 (HL7 v2.5.1 ch. 3) with canary PID-3, -5, -7, -11 and -13.
A01 = (
    "MSH|^~\\&|ADT|HOSP|EHR|INTAKE|20260301101500||ADT^A01^ADT_A01|OTEL-0001|P|2.5.1\r"
    "EVN|A01|20260301101500\r"
    f"PID|1||{MRN}^^^HOSP^MR||{FAMILY}^{GIVEN}||19390521|F|||12 Otelvale Road^^Springfield"
    f"^IL^62701||^PRN^PH^^1^217^{PHONE}\r"
    "PV1|1|I|WARD-3^301^A^HOSP||||||||||||||||||V-OTEL-1\r"
).encode()
HOPS = ["ingest", "normalize", "consent-check", "notify", "deliver"]


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    with otlp_collector() as collector:
        yield collector


@pytest.fixture(scope="module")
def api(
    azurite: str, collector: Collector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("telemetry")
    partners = [
        Partner(id="hospital", name="Hospital"),
        Partner(id="acme", name="Acme Care", roles=frozenset({Role.READ})),
    ]
    env = {
        "INTAKE_LOCAL_SECRETS_FILE": str(tmp / "secrets.json"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_SERVICE_NAME": "fhir-intake-test",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
    }
    with product_api(azurite, tmp, partners, "fk-otel", env) as api:
        clients = api["clients"]
        TablePersonIndex(  # the care team follows the patient (``intake partners relate``)
            clients.table_client(Table.COMPARTMENTS), clients.table_client(Table.IDENTIFIERS)
        ).relate(
            patient_id("hospital", local_system("hospital", "HOSP"), MRN), "acme", datetime.now(UTC)
        )
        yield api


@pytest.fixture(scope="module")
def delivered(api: dict[str, Any], collector: Collector) -> dict[str, Any]:
    """One A01 posted with a caller's traceparent and delivered to a subscriber; the
    caller's trace and span ids and the ingestion id."""
    with webhook_receiver() as receiver:
        response = api["client"].post(
            "/subscriptions",
            json={"endpoint": f"{receiver.url}/hook", "topics": ["admission"]},
            headers={"x-api-key": api["keys"]["acme"]},
        )
        assert response.status_code == 201, response.text
        time.sleep(SUBSCRIPTIONS_REFRESH_SECONDS + 0.2)  # the notify stage's cache catches up
        caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        response = api["client"].post(
            "/ingest",
            content=A01,
            headers={
                "content-type": "x-application/hl7-v2+er7",
                "x-api-key": api["keys"]["hospital"],
                "idempotency-key": secrets.token_hex(16),
                "traceparent": f"00-{caller_trace}-{caller_span}-01",
            },
        )
        assert response.status_code == 202, response.text
        receiver.wait_for(1, timeout=30)
    names = set(METRICS)
    arrived = collector.wait(
        lambda c: (
            {s.name for s in c.spans() if s.trace_id == caller_trace} >= set(HOPS)
            and names <= set(c.metric_points())
            and any(p.get("fhir_intake.outcome") == "delivered" for p in _points(c, "deliveries"))
        ),
        timeout=20,
    )
    assert arrived, (sorted({s.name for s in collector.spans()}), sorted(collector.metric_points()))
    return {"trace": caller_trace, "span": caller_span, "ingestion": response.json()["id"]}


def _points(collector: Collector, name: str) -> list[dict[str, Any]]:
    return collector.metric_points().get(f"fhir_intake.{name}", [])


def _hops(collector: Collector, trace: str) -> dict[str, Span]:
    spans = [s for s in collector.spans() if s.trace_id == trace]
    for name in HOPS:
        assert len([s for s in spans if s.name == name]) == 1, (name, spans)
    return {s.name: s for s in spans}


def test_one_trace_runs_from_the_callers_span_through_every_hop(
    collector: Collector, delivered: dict[str, Any]
) -> None:
    hops = _hops(collector, delivered["trace"])
    assert hops["ingest"].parent_span_id == delivered["span"]  # the caller's traceparent
    for before, after in itertools.pairwise(HOPS):
        assert hops[after].parent_span_id == hops[before].span_id, (before, after)
    assert hops["ingest"].kind == 2  # SPAN_KIND_SERVER
    assert {hops[n].kind for n in HOPS[1:]} == {5}  # SPAN_KIND_CONSUMER
    assert all(s.status_code != 2 for s in hops.values())  # none failed
    assert hops["ingest"].resource["service.name"] == "fhir-intake-test"
    assert hops["ingest"].resource["service.version"]


def test_each_span_says_partner_stage_outcome_and_counts(
    collector: Collector, delivered: dict[str, Any]
) -> None:
    hops = {n: s.attributes for n, s in _hops(collector, delivered["trace"]).items()}
    ingestion = delivered["ingestion"]
    assert hops["ingest"]["http.response.status_code"] == 202
    assert hops["ingest"]["fhir_intake.outcome"] == "stored"
    assert hops["ingest"]["fhir_intake.received.bytes"] == len(A01)
    for name in HOPS[:3]:
        assert hops[name]["fhir_intake.partner"] == "hospital", name
        assert hops[name]["fhir_intake.correlation_id"] == ingestion, name
    for name in HOPS:
        assert hops[name]["fhir_intake.storage_operations"] > 0, name
    for name in HOPS[1:]:
        assert hops[name]["messaging.destination.name"] == name
        assert hops[name]["fhir_intake.attempt"] == 1
    assert hops["normalize"]["fhir_intake.stage"] == "normalize"
    assert hops["normalize"]["fhir_intake.outcome"] == "normalized"
    assert hops["normalize"]["fhir_intake.normalize.resources"] >= 3  # Patient, Encounter...
    consent = hops["consent-check"]
    assert consent["fhir_intake.stage"] == "consent"
    assert consent["fhir_intake.outcome"] == "permitted"
    assert consent["fhir_intake.consent.denied"] == 0
    assert consent["fhir_intake.store.created"] >= 3  # the store step, in the same span
    assert hops["notify"]["fhir_intake.notify.deliveries"] == 1
    assert hops["deliver"]["fhir_intake.outcome"] == "delivered"


def test_every_metric_is_exported_with_closed_set_attributes(
    collector: Collector, delivered: dict[str, Any]
) -> None:
    points = collector.metric_points()
    assert set(METRICS) <= set(points)
    messages = points["fhir_intake.messages"]
    stages = {(p["fhir_intake.stage"], p["fhir_intake.outcome"]) for p in messages}
    assert {("ingest", "stored"), ("normalize", "normalized"), ("deliver", "delivered")} <= stages
    assert {p["fhir_intake.outcome"] for p in points["fhir_intake.consent.decisions"]} == {"permit"}
    depths = {p["fhir_intake.queue"] for p in points["fhir_intake.queue.poison_depth"]}
    assert "normalize-poison" in depths and "deliver-poison" in depths
    assert "normalize" in {p["fhir_intake.queue"] for p in points["fhir_intake.queue.depth"]}
    assert {p["fhir_intake.stage"] for p in points["fhir_intake.storage.operations"]} >= {
        "ingest",
        "normalize",
    }
    allowed = {f"fhir_intake.{a}" for a in ("stage", "outcome", "partner", "queue")}
    for name in METRICS:
        for point in points[name]:
            assert set(point) - {"_value"} <= allowed, (name, point)


def test_log_records_arrive_in_the_trace_with_their_safe_fields(
    collector: Collector, delivered: dict[str, Any]
) -> None:
    hops = _hops(collector, delivered["trace"])
    records = [r for r in collector.log_records() if r["trace_id"] == delivered["trace"]]
    consent = [r for r in records if str(r["body"]).startswith("consent: ")]
    assert consent, [r["body"] for r in records]
    assert consent[0]["span_id"] == hops["consent-check"].span_id
    fields = consent[0]["attributes"]
    assert fields["stage"] == "consent" and fields["outcome"] == "permitted"
    assert fields["correlation_id"] == delivered["ingestion"]
    assert isinstance(fields["permitted"], int)


def test_no_canary_value_is_in_anything_exported(
    collector: Collector, delivered: dict[str, Any]
) -> None:
    strings = list(collector.every_string())
    assert len(strings) > 100  # the search saw the spans, metrics and logs
    leaks = {c for c in CANARIES for s in strings if c.lower() in s.lower()}
    assert not leaks, leaks
