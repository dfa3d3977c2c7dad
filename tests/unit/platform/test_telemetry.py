"""shared/platform/telemetry.py alone: envelopes follow the span being recorded (and keep
their traceparent when none is), telemetry is off without settings, log records leave
sanitized, and a stage span carries our attributes, its outcome and a failure's type only
(checked in a child process, since OpenTelemetry's global providers are set once)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
from shared.platform.logs import log_context
from shared.platform.settings import Settings
from shared.platform.telemetry import (
    Exporting,
    SafeLogHandler,
    configure_telemetry,
    current_traceparent,
    stage_span,
)
from tests.support.hostproc import REPO

INCOMING = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def _envelope() -> Envelope:
    return Envelope(
        correlation_id="c-1",
        partner="acme",
        kind=EnvelopeKind.RAW_RECEIVED,
        blob=BlobRef(container="raw", name="acme/x.hl7"),
        traceparent=INCOMING,
    )


def _child(script: str) -> subprocess.CompletedProcess[str]:
    """Run a script in a fresh interpreter: OpenTelemetry's global providers are set once
    per process, so each configuration gets a process of its own."""
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_without_settings_telemetry_is_off_and_envelopes_carry_what_they_came_with() -> None:
    assert configure_telemetry(Settings(**STORAGE)) is Exporting.OFF  # type: ignore[arg-type]
    with stage_span("normalize", "normalize", 1, traceparent=INCOMING) as hop:
        assert current_traceparent() is None
        sent = _envelope().next(EnvelopeKind.BUNDLE_NORMALIZED, None)
        hop.outcome = "normalized"
    assert sent.traceparent == INCOMING
    assert Envelope.raw_received("c-2", "acme", "b", datetime.now(UTC), INCOMING).traceparent == (
        INCOMING
    )


def test_the_next_envelope_carries_the_span_being_recorded() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("normalize") as span:
        context = span.get_span_context()
        sent = _envelope().next(EnvelopeKind.BUNDLE_NORMALIZED, None)
        changed = _envelope().changed(())
        received = Envelope.raw_received("c-2", "acme", "b", datetime.now(UTC), INCOMING)
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    assert sent.traceparent == changed.traceparent == received.traceparent == expected
    assert _envelope().next(EnvelopeKind.BUNDLE_NORMALIZED, None).traceparent == INCOMING


def test_settings_read_the_identity_telemetry_is_sent_as() -> None:
    client = "11111111-2222-3333-4444-555555555555"
    config = Settings(
        **STORAGE,  # type: ignore[arg-type]
        APPLICATIONINSIGHTS_AUTHENTICATION_STRING=f"ClientId={client};Authorization=AAD",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318",
    )
    assert config.appinsights_client_id == client
    assert config.otlp_endpoint == "http://127.0.0.1:4318"
    assert Settings(**STORAGE).appinsights_client_id is None  # type: ignore[arg-type]


class _Logger:
    """Keeps what the handler emits (the OpenTelemetry Logger's keyword form)."""

    def __init__(self) -> None:
        self.emitted: list[dict[str, Any]] = []

    def emit(self, **record: Any) -> None:
        self.emitted.append(record)


def test_log_records_leave_sanitized_as_the_stderr_lines() -> None:
    sink = _Logger()
    handler = SafeLogHandler(sink)  # type: ignore[arg-type]
    ours, theirs = logging.getLogger("shared.test"), logging.getLogger("urllib3.test")
    for logger in (ours, theirs):
        logger.addHandler(handler)
        logger.propagate = False
    try:
        with log_context("c-9", "acme", INCOMING):
            try:
                raise ValueError("Zyxcanary 1941-12-07")
            except ValueError:
                ours.exception(
                    "normalize: %s", "failed", extra={"stage": "normalize", "family": "Zyxcanary"}
                )
        theirs.warning("GET /Patient?identifier=Zyxcanary")
    finally:
        for logger in (ours, theirs):
            logger.removeHandler(handler)
            logger.propagate = True
    [record] = sink.emitted  # urllib3's line is not exported
    assert record["body"] == "normalize: failed"
    attributes = record["attributes"]
    assert attributes["stage"] == "normalize" and attributes["correlation_id"] == "c-9"
    assert attributes["trace_id"] == INCOMING.split("-")[1]
    assert attributes["family"].startswith("sha256:")
    assert attributes["exception.type"] == "ValueError"
    assert "Zyxcanary" not in json.dumps(record, default=str)


_SPAN_SCRIPT = textwrap.dedent(
    """
    import json
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    from shared.platform.telemetry import count_storage_request, note_report, stage_span

    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with stage_span("normalize", "normalize", 2, partner="acme", correlation_id="c-1",
                    traceparent=incoming):
        count_storage_request()
        count_storage_request()
        note_report("normalize", "normalized", {"resources": 4})
    try:
        with stage_span("consent", "consent-check", 1, partner="acme", traceparent=incoming):
            raise RuntimeError("Zyxcanary")
    except RuntimeError:
        pass
    spans = [
        {"name": s.name, "parent": format(s.parent.span_id, "016x"),
         "trace": format(s.context.trace_id, "032x"), "kind": s.kind.name,
         "attributes": dict(s.attributes), "status": s.status.status_code.name,
         "description": s.status.description, "events": len(s.events)}
        for s in exporter.get_finished_spans()
    ]
    data = reader.get_metrics_data()
    points = {
        m.name: [dict(p.attributes) for p in m.data.data_points]
        for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    print(json.dumps({"spans": spans, "metrics": points}))
    """
)


def test_a_stage_span_carries_our_attributes_and_a_failure_as_its_type() -> None:
    done = _child(_SPAN_SCRIPT)
    found = json.loads(done.stdout)
    ok, failed = found["spans"]
    assert ok["name"] == "normalize" and ok["kind"] == "CONSUMER"
    assert ok["trace"] == INCOMING.split("-")[1] and ok["parent"] == INCOMING.split("-")[2]
    attributes = ok["attributes"]
    assert attributes["fhir_intake.partner"] == "acme"
    assert attributes["fhir_intake.correlation_id"] == "c-1"
    assert attributes["fhir_intake.attempt"] == 2
    assert attributes["fhir_intake.outcome"] == "normalized"
    assert attributes["fhir_intake.normalize.resources"] == 4
    assert attributes["fhir_intake.storage_operations"] == 2
    assert attributes["messaging.destination.name"] == "normalize"
    assert failed["name"] == "consent-check" and failed["status"] == "ERROR"
    assert failed["description"] == "RuntimeError" and failed["events"] == 0  # no message
    assert failed["attributes"]["fhir_intake.outcome"] == "failed"
    # Under a name of ours too: the Azure Monitor exporter leaves error.type out.
    assert failed["attributes"]["fhir_intake.error_type"] == "RuntimeError"
    assert "Zyxcanary" not in done.stdout
    messages = {
        (p["fhir_intake.stage"], p["fhir_intake.outcome"])
        for p in found["metrics"]["fhir_intake.messages"]
    }
    assert messages == {("normalize", "normalized"), ("consent", "failed")}
    assert {p["fhir_intake.stage"] for p in found["metrics"]["fhir_intake.storage.operations"]} == {
        "normalize",
        "consent",
    }


_SIGNALS_OFF_SCRIPT = textwrap.dedent(
    """
    import json, logging
    from opentelemetry import _logs, metrics, trace
    from shared.platform.settings import Settings
    from shared.platform.telemetry import configure_telemetry

    before = len(logging.getLogger().handlers)
    config = Settings(
        AzureWebJobsStorage="UseDevelopmentStorage=true",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_TRACES_EXPORTER="none",
        OTEL_LOGS_EXPORTER="None",
    )
    print(json.dumps({
        "exporting": configure_telemetry(config),
        "again": configure_telemetry(Settings(AzureWebJobsStorage="UseDevelopmentStorage=true")),
        "tracer": type(trace.get_tracer_provider()).__name__,
        "meter": type(metrics.get_meter_provider()).__name__,
        "logger": type(_logs.get_logger_provider()).__name__,
        "handlers": [type(h).__name__ for h in logging.getLogger().handlers[before:]],
    }))
    """
)


def test_a_signal_set_to_none_stays_off_and_configuring_twice_keeps_the_first() -> None:
    done = _child(_SIGNALS_OFF_SCRIPT)
    found = json.loads(done.stdout)
    assert found["exporting"] == found["again"] == "otlp"
    assert found["tracer"] == "ProxyTracerProvider" and found["logger"] == "ProxyLoggerProvider"
    assert found["meter"] == "MeterProvider"  # the SDK's: metrics were not turned off
    assert found["handlers"] == []


_STARTS_SCRIPT = textwrap.dedent(
    """
    import json, time
    from opentelemetry import trace
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from shared.platform import telemetry
    from shared.platform.settings import Settings

    broken = Settings(
        AzureWebJobsStorage="UseDevelopmentStorage=true",
        APPLICATIONINSIGHTS_CONNECTION_STRING="InstrumentationKey=not-a-guid",
    )
    exporting = telemetry.configure_telemetry(broken)  # must not raise: every function would

    with telemetry.server_span("ingest", None, "POST", "/api/ingest") as hop:
        recording = trace.get_current_span().is_recording()  # off: nothing is recorded
        hop.status_code = 503
    # Depths are reported while fresh only.
    telemetry.record_queue_depths({"normalize": 3}, {"normalize-poison": 2})
    fresh = [(o.value, dict(o.attributes)) for o in telemetry._observe("poison")(None)]
    for key, (at, depth) in list(telemetry._depths.items()):
        telemetry._depths[key] = (at - telemetry.GAUGE_MAX_AGE_SECONDS - 1, depth)
    stale = list(telemetry._observe("poison")(None)) + list(telemetry._observe("queue")(None))
    print(json.dumps({"exporting": exporting, "recording": recording, "fresh": fresh,
                      "stale": len(stale), "outcome": hop.outcome}))
    """
)


def test_a_misconfiguration_turns_telemetry_off_and_nothing_else() -> None:
    done = _child(_STARTS_SCRIPT)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["exporting"] == "off"
    assert "telemetry off: it could not start (ValueError)" in done.stderr
    assert found["recording"] is False
    assert found["outcome"] == "retry"  # a 503: the caller resends
    assert found["fresh"] == [[2, {"fhir_intake.queue": "normalize-poison"}]]
    assert found["stale"] == 0  # an old reading is not sent again


_UNSAMPLED_SCRIPT = textwrap.dedent(
    """
    import json
    from opentelemetry import trace
    from shared.platform import telemetry
    from shared.platform.settings import Settings

    telemetry.configure_telemetry(Settings(
        AzureWebJobsStorage="UseDevelopmentStorage=true",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",  # nobody: exports fail quietly
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    ))
    unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    with telemetry.server_span("ingest", unsampled, "POST", "/api/ingest"):
        recording = trace.get_current_span().is_recording()
        carried = telemetry.current_traceparent()
    print(json.dumps({"recording": recording, "carried": carried}))
    """
)


def test_a_caller_saying_not_sampled_still_gets_the_pipeline_traced() -> None:
    done = _child(_UNSAMPLED_SCRIPT)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["recording"] is True
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    assert found["carried"].startswith(f"00-{trace_id}-") and found["carried"].endswith("-01")
