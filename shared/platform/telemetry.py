"""OpenTelemetry: one trace per ingestion, a span per hop, metrics, and safe log records.

Where it goes (``configure_telemetry``, once per process, from the composition root):
Application Insights when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (Azure: the
app's managed identity, ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING``), else OTLP/HTTP
protobuf when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the local host, any collector),
else nowhere: the API stays a no-op and envelopes carry the traceparent they came with.

We use the exporters with our own providers, not the ``azure-monitor-opentelemetry``
distro: the distro instruments requests, urllib, azure-core and web frameworks, whose
spans carry URLs (``Patient?identifier=...`` query strings, blob names) and SDK
messages we do not write. Here every span, attribute and metric is ours:

- spans: ``ingest`` (SERVER, child of a valid caller ``traceparent``) and one CONSUMER
  span per queue message (named after its queue), whose parent is the span that sent
  the envelope (``Envelope.next`` takes the current span's traceparent), so
  ingest -> normalize -> consent-check -> notify -> deliver is one trace;
- attributes: ids of our own (partner, stage, outcome, correlation id, attempt, queue)
  and integer counts, never a string from a payload; a failure is its exception type;
- metrics: values from closed sets only (stage, outcome, queue, partner id);
- logs: our loggers' records after the same sanitizing as the lines on stderr
  (``logs.safe_fields``), exceptions as their type only.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared import __version__

from .logs import log_context, safe_fields, trace_ids

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "ATTRIBUTE_PREFIX",
    "METRICS",
    "OUTCOME",
    "PARTNER",
    "QUEUE",
    "STAGE",
    "Exporting",
    "Hop",
    "configure_telemetry",
    "count_consent_decisions",
    "count_delivery",
    "count_storage_request",
    "current_traceparent",
    "note_outcome",
    "note_report",
    "record_queue_depths",
    "server_span",
    "stage_span",
]

ATTRIBUTE_PREFIX = "fhir_intake."
PARTNER = "fhir_intake.partner"
STAGE = "fhir_intake.stage"
OUTCOME = "fhir_intake.outcome"
CORRELATION = "fhir_intake.correlation_id"
ATTEMPT = "fhir_intake.attempt"
QUEUE = "fhir_intake.queue"
STORAGE_OPERATIONS = "fhir_intake.storage_operations"
ERROR_TYPE = "fhir_intake.error_type"
STATUS_CODE = "fhir_intake.status_code"
# The loggers whose messages are our own constant format strings; others' (the Azure SDK,
# urllib3, the exporters themselves) may quote URLs, and an exporter logging into itself
# would loop.
_OUR_LOGGERS = frozenset({"shared", "functions", "devhost", "intake_cli", "mllp_listener"})
_SEVERITY = {
    logging.DEBUG: _logs.SeverityNumber.DEBUG,
    logging.INFO: _logs.SeverityNumber.INFO,
    logging.WARNING: _logs.SeverityNumber.WARN,
    logging.ERROR: _logs.SeverityNumber.ERROR,
    logging.CRITICAL: _logs.SeverityNumber.FATAL,
}
EXPORT_TIMEOUT_SECONDS = 3
GAUGE_MAX_AGE_SECONDS = 600  # a depth older than this is not sent again (two sweeps and more)
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_REQUESTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Exporting(StrEnum):
    """Where this process's telemetry goes."""

    AZURE_MONITOR = "azure-monitor"
    OTLP = "otlp"
    OFF = "off"


_tracer = trace.get_tracer("fhir_intake", __version__)
_meter = metrics.get_meter("fhir_intake", __version__)
_messages = _meter.create_counter(
    "fhir_intake.messages", unit="{message}", description="Messages handled, by stage and outcome"
)
_duration = _meter.create_histogram(
    "fhir_intake.stage.duration",
    unit="s",
    description="Time one message took in its stage",
    explicit_bucket_boundaries_advisory=_SECONDS,
)
_storage_ops = _meter.create_histogram(
    "fhir_intake.storage.operations",
    unit="{request}",
    description="Storage requests one message cost in its stage",
    explicit_bucket_boundaries_advisory=_REQUESTS,
)
# The latest depths the sweeper read, with when: the gauges report them only while they are
# fresh (a synchronous gauge would send its last value every minute until the process
# ends, long after the queue was emptied or the sweep moved to another instance).
_depths: dict[tuple[str, str], tuple[float, int]] = {}
_depths_lock = threading.Lock()


def _observe(kind: str) -> Any:
    def observe(options: Any) -> Iterator[metrics.Observation]:
        now = time.monotonic()
        with _depths_lock:
            fresh = [
                (queue, depth)
                for (of, queue), (at, depth) in _depths.items()
                if of == kind and now - at <= GAUGE_MAX_AGE_SECONDS
            ]
        for queue, depth in fresh:
            yield metrics.Observation(depth, {QUEUE: queue})

    return observe


_queue_depth = _meter.create_observable_gauge(
    "fhir_intake.queue.depth",
    callbacks=[_observe("queue")],
    unit="{message}",
    description="Messages waiting in a queue",
)
_poison_depth = _meter.create_observable_gauge(
    "fhir_intake.queue.poison_depth",
    callbacks=[_observe("poison")],
    unit="{message}",
    description="Messages waiting in a poison queue for an operator",
)
_deliveries = _meter.create_counter(
    "fhir_intake.deliveries", unit="{attempt}", description="Webhook delivery attempts by outcome"
)
_consent_decisions = _meter.create_counter(
    "fhir_intake.consent.decisions",
    unit="{decision}",
    description="Consent decisions on collected data, by outcome",
)
METRICS = (
    "fhir_intake.messages",
    "fhir_intake.stage.duration",
    "fhir_intake.storage.operations",
    "fhir_intake.queue.depth",
    "fhir_intake.queue.poison_depth",
    "fhir_intake.deliveries",
    "fhir_intake.consent.decisions",
)
"""Every metric this module records (the docs, the workbook and the tests name them)."""

log = logging.getLogger(__name__)
_configured: Exporting | None = None
_configure_lock = threading.Lock()


@dataclass
class Hop:
    """One message's (or request's) stay in one stage: what the span and the metrics
    report when it ends. Stages say their outcome (``note_outcome``, ``note_report``);
    storage requests count themselves (``count_storage_request``), from any thread that
    carries the invocation's context."""

    stage: str
    partner: str | None = None
    correlation_id: str | None = None
    outcome: str | None = None
    status_code: int | None = None
    storage_requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def counted(self) -> None:
        with self._lock:
            self.storage_requests += 1


_hop: contextvars.ContextVar[Hop | None] = contextvars.ContextVar("telemetry_hop", default=None)


def configure_telemetry(settings: Settings) -> Exporting:
    """Start exporting as the settings say, once per process (later calls return what the
    first chose: OpenTelemetry's global providers can be set only once).

    Returns:
        Where telemetry goes; ``Exporting.OFF`` leaves the API a no-op.
    """
    global _configured
    with _configure_lock:
        if _configured is None:
            try:
                _configured = _start(settings)
            except Exception as exc:  # noqa: BLE001 - the boundary: telemetry is never worth an outage
                # A malformed connection string, an exporter that will not build: every
                # function would fail with it (settings are every function's first call).
                log.warning(
                    "telemetry off: it could not start (%s)",
                    type(exc).__name__,
                    extra={"stage": "telemetry"},
                )
                _configured = Exporting.OFF
        return _configured


def _start(settings: Settings) -> Exporting:
    if settings.otel_sdk_disabled:
        return Exporting.OFF
    if settings.appinsights_connection:
        exporters = _azure_monitor_exporters(settings)
        exporting = Exporting.AZURE_MONITOR
    elif settings.otlp_endpoint:
        exporters = _otlp_exporters(settings.otlp_endpoint)
        exporting = Exporting.OTLP
    else:
        return Exporting.OFF
    # The SDK is imported only when telemetry is on: a process without it pays nothing.
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    spans, metric_exporter, log_exporter = exporters
    resource = Resource.create(
        {"service.name": settings.otel_service_name, "service.version": __version__}
    )
    # Each provider flushes and shuts down at interpreter exit (shutdown_on_exit), so the
    # local host's graceful SIGTERM stop sends the last batch. A signal whose
    # OTEL_<SIGNAL>_EXPORTER is "none" keeps the API's no-op (spans: envelopes then carry
    # the traceparent they came with).
    if not _off(settings.otel_traces_exporter):
        # Every ingestion is traced: a caller's traceparent saying "not sampled" (a partner
        # gateway's choice) still gives the parent, never the decision to record.
        sampler = ParentBased(root=ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON)
        tracer_provider = TracerProvider(resource=resource, sampler=sampler)
        tracer_provider.add_span_processor(BatchSpanProcessor(spans))
        trace.set_tracer_provider(tracer_provider)
    if not _off(settings.otel_metrics_exporter):
        reader = PeriodicExportingMetricReader(
            metric_exporter, export_interval_millis=settings.otel_metric_export_interval_ms
        )
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    if not _off(settings.otel_logs_exporter):
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
        _logs.set_logger_provider(logger_provider)
        handler = SafeLogHandler(logger_provider.get_logger("fhir_intake"))
        logging.getLogger().addHandler(handler)
    return exporting


def _off(exporter: str) -> bool:
    return exporter.strip().lower() == "none"


def _otlp_exporters(endpoint: str) -> tuple[Any, Any, Any]:
    """OTLP/HTTP protobuf exporters for a collector's base URL (``/v1/<signal>`` added, as
    the SDK does for ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = endpoint.rstrip("/")
    # A collector that hangs costs an export at most this long (the SDK's default is 10 s,
    # retried with back-off: a stop or a CLI command waited for it).
    wait = EXPORT_TIMEOUT_SECONDS
    return (
        OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=wait),
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=wait),
        OTLPLogExporter(endpoint=f"{base}/v1/logs", timeout=wait),
    )


def _azure_monitor_exporters(settings: Settings) -> tuple[Any, Any, Any]:
    """Application Insights exporters sending as the app's managed identity (local
    authentication is off on the component, infra/modules/monitoring.bicep)."""
    from azure.identity import ManagedIdentityCredential
    from azure.monitor.opentelemetry.exporter import (
        AzureMonitorLogExporter,
        AzureMonitorMetricExporter,
        AzureMonitorTraceExporter,
    )

    options: dict[str, Any] = {"connection_string": settings.appinsights_connection}
    if settings.appinsights_authentication:
        options["credential"] = ManagedIdentityCredential(client_id=settings.appinsights_client_id)
    return (
        AzureMonitorTraceExporter(**options),
        AzureMonitorMetricExporter(**options),
        AzureMonitorLogExporter(**options),
    )


def current_traceparent() -> str | None:
    """The W3C traceparent of the span being recorded now, or None (telemetry off, or no
    span): what the next envelope carries, so the next stage's span is its child."""
    span = trace.get_current_span()
    if not span.is_recording():
        return None
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _parent(traceparent: str | None) -> Any:
    if not trace_ids(traceparent):
        return None
    return TraceContextTextMapPropagator().extract({"traceparent": str(traceparent).strip()})


@contextlib.contextmanager
def server_span(
    name: str, traceparent: str | None, method: str | None = None, route: str | None = None
) -> Iterator[Hop]:
    """A span for one HTTP request (kind SERVER), the child of the caller's traceparent
    when it is valid; the caller sets ``status_code`` on the hop it gets."""
    hop = Hop(stage=name)
    # Method and route make the Azure Monitor exporter write a request with its result
    # code, and success from it; the status goes on ours as well (it drops http.*).
    attributes = {STAGE: name}
    if method and route:  # an HTTP request (an MLLP frame is a server span without them)
        attributes |= {"http.request.method": method, "http.route": route}
    with _span(name, trace.SpanKind.SERVER, _parent(traceparent), hop, attributes) as span:
        yield hop
        if hop.status_code is not None:
            span.set_attribute("http.response.status_code", hop.status_code)
            span.set_attribute(STATUS_CODE, hop.status_code)
            if hop.status_code >= 500:
                span.set_status(trace.StatusCode.ERROR, str(hop.status_code))
            if hop.outcome is None:
                hop.outcome = _http_outcome(hop.status_code)


def _http_outcome(status: int) -> str:
    if status in (409, 503):  # in progress, or storage away: the caller resends
        return "retry"
    return "refused" if status >= 400 else "accepted"


@contextlib.contextmanager
def stage_span(
    stage: str,
    queue: str,
    attempt: int,
    *,
    partner: str | None = None,
    correlation_id: str | None = None,
    traceparent: str | None = None,
) -> Iterator[Hop]:
    """A span for one queue message (kind CONSUMER, named after its queue), the child of
    the span that sent it; the log context's trace and span ids follow it."""
    queue = str(queue)  # a Queue member: the plain name for exporters
    hop = Hop(stage=stage, partner=partner, correlation_id=correlation_id)
    attributes: dict[str, Any] = {
        STAGE: stage,
        ATTEMPT: attempt,
        QUEUE: queue,
        "messaging.system": "azure_storage_queue",
        "messaging.destination.name": queue,
        "messaging.operation.type": "process",
    }
    with _span(queue, trace.SpanKind.CONSUMER, _parent(traceparent), hop, attributes):
        yield hop


@contextlib.contextmanager
def _span(
    name: str, kind: trace.SpanKind, parent: Any, hop: Hop, attributes: dict[str, Any]
) -> Iterator[trace.Span]:
    """Run the block in a span and a hop; at the end the outcome, the storage requests and
    the duration go on the span and into the metrics. A failure is its exception type
    (never ``record_exception``: the message can quote the payload)."""
    started = time.perf_counter()
    token = _hop.set(hop)
    try:
        with _tracer.start_as_current_span(
            name,
            context=parent,
            kind=kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            bound = current_traceparent()
            with log_context(traceparent=bound) if bound else contextlib.nullcontext():
                try:
                    yield span
                except BaseException as exc:
                    hop.outcome = "failed"
                    span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
                    span.set_attribute("error.type", type(exc).__name__)
                    # Ours too: the Azure Monitor exporter leaves error.type out of
                    # Properties, where the workbook reads failures by type.
                    span.set_attribute(ERROR_TYPE, type(exc).__name__)
                    raise
                finally:
                    _finish(span, hop, time.perf_counter() - started)
    finally:
        _hop.reset(token)


def _finish(span: trace.Span, hop: Hop, seconds: float) -> None:
    outcome = hop.outcome or "done"
    span.set_attribute(OUTCOME, outcome)
    span.set_attribute(STORAGE_OPERATIONS, hop.storage_requests)
    if hop.partner:
        span.set_attribute(PARTNER, hop.partner)
    if hop.correlation_id:
        span.set_attribute(CORRELATION, hop.correlation_id)
    by_stage = {STAGE: hop.stage}
    by_outcome = {**by_stage, OUTCOME: outcome}
    _messages.add(1, {**by_outcome, PARTNER: hop.partner} if hop.partner else by_outcome)
    _duration.record(seconds, by_outcome)
    _storage_ops.record(hop.storage_requests, by_stage)


def note_outcome(outcome: str, partner: str | None = None) -> None:
    """The current hop's outcome (one of the stage's own words: stored, delivered...)."""
    hop = _hop.get()
    if hop is None:
        return
    hop.outcome = outcome
    if partner and not hop.partner:
        hop.partner = partner


def note_report(stage: str, outcome: str, counts: Mapping[str, int]) -> None:
    """A stage's report of its work on the current span: its counts as
    ``fhir_intake.<stage>.<count>`` and, when the report is the hop's own stage's (or the
    first one), its outcome. Reports carry integers and our own words only."""
    hop = _hop.get()
    if hop is None:
        return
    if hop.outcome is None or stage == hop.stage:
        hop.outcome = outcome
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute(f"{ATTRIBUTE_PREFIX}{stage}.outcome", outcome)
    for name, value in counts.items():
        if isinstance(value, int) and not isinstance(value, bool):
            span.set_attribute(f"{ATTRIBUTE_PREFIX}{stage}.{name}", value)


def count_storage_request() -> None:
    """One storage request made for the current hop (``transport.StorageTransport``)."""
    hop = _hop.get()
    if hop is not None:
        hop.counted()


def count_delivery(outcome: str) -> None:
    """One webhook delivery attempt's outcome (delivered, pending, dead, skipped)."""
    _deliveries.add(1, {OUTCOME: outcome})
    note_outcome(outcome)


def count_consent_decisions(permitted: int, denied: int, partner: str | None = None) -> None:
    """Consent decisions the consent stage made on one Bundle's data."""
    base = {PARTNER: partner} if partner else {}
    if permitted:
        _consent_decisions.add(permitted, {**base, OUTCOME: "permit"})
    if denied:
        _consent_decisions.add(denied, {**base, OUTCOME: "deny"})


def record_queue_depths(depths: Mapping[str, int], poison: Mapping[str, int]) -> None:
    """Queue and poison-queue depths by logical name (the sweeper timer reads them)."""
    now = time.monotonic()
    with _depths_lock:
        for queue, depth in depths.items():
            _depths[("queue", queue)] = (now, depth)
        for queue, depth in poison.items():
            _depths[("poison", queue)] = (now, depth)


class SafeLogHandler(logging.Handler):
    """Our log records as OpenTelemetry log records, sanitized like the stderr lines:
    the message (our constant format string, formatted), the bound ids and the safe
    extra fields (other strings hashed), an exception as its type only."""

    def __init__(self, logger: _logs.Logger) -> None:
        super().__init__()
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".", 1)[0] not in _OUR_LOGGERS:
            return
        try:
            attributes: dict[str, Any] = {
                k: v for k, v in safe_fields(record).items() if v is not None
            }
            if record.exc_info and record.exc_info[0] is not None:
                attributes["exception.type"] = record.exc_info[0].__name__
            self._logger.emit(
                timestamp=int(record.created * 1e9),
                severity_number=_SEVERITY.get(record.levelno, _logs.SeverityNumber.INFO),
                severity_text=record.levelname,
                body=record.getMessage(),
                attributes={"logger": record.name, **attributes},
            )
        except Exception:  # noqa: BLE001 - a handler never raises into the code that logged
            self.handleError(record)
