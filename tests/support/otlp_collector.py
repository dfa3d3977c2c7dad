"""An OpenTelemetry collector stand-in on loopback: OTLP/HTTP protobuf (``POST /v1/traces``,
``/v1/metrics``, ``/v1/logs``) parsed with ``opentelemetry-proto``'s messages and kept in
memory, so a test can read what a real exporter sent over a real socket."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["Collector", "Span", "otlp_collector", "value_of"]

_MESSAGES: dict[str, Callable[[], Any]] = {
    "/v1/traces": ExportTraceServiceRequest,
    "/v1/metrics": ExportMetricsServiceRequest,
    "/v1/logs": ExportLogsServiceRequest,
}


def value_of(value: AnyValue) -> Any:
    """An OTLP AnyValue as Python (arrays and key-value lists included)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in pairs}


@dataclass(frozen=True)
class Span:
    """One received span, ids as hex."""

    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    resource: dict[str, Any]


@dataclass
class Collector:
    """What the stand-in received, by signal."""

    url: str = ""
    traces: list[ExportTraceServiceRequest] = field(default_factory=list)
    metrics: list[ExportMetricsServiceRequest] = field(default_factory=list)
    logs: list[ExportLogsServiceRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keep(self, path: str, message: Any) -> None:
        with self.lock:
            {"/v1/traces": self.traces, "/v1/metrics": self.metrics, "/v1/logs": self.logs}[
                path
            ].append(message)

    def spans(self) -> list[Span]:
        """Every span received so far."""
        with self.lock:
            requests = list(self.traces)
        found = []
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        found.append(
                            Span(
                                name=span.name,
                                kind=span.kind,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                attributes=_attributes(span.attributes),
                                status_code=span.status.code,
                                status_message=span.status.message,
                                resource=resource,
                            )
                        )
        return found

    def metric_points(self) -> dict[str, list[dict[str, Any]]]:
        """Every metric received so far, by name: each data point's attributes (and the
        point's value or sum as ``_value``)."""
        with self.lock:
            requests = list(self.metrics)
        found: dict[str, list[dict[str, Any]]] = {}
        for request in requests:
            for resource_metrics in request.resource_metrics:
                for scope in resource_metrics.scope_metrics:
                    for metric in scope.metrics:
                        data = getattr(metric, metric.WhichOneof("data"))
                        for point in data.data_points:
                            attrs = _attributes(point.attributes)
                            if hasattr(point, "as_int"):
                                attrs["_value"] = getattr(point, point.WhichOneof("value"))
                            else:
                                attrs["_value"] = point.sum
                            found.setdefault(metric.name, []).append(attrs)
        return found

    def log_records(self) -> list[dict[str, Any]]:
        """Every log record received so far: body, severity, attributes, trace ids."""
        with self.lock:
            requests = list(self.logs)
        found = []
        for request in requests:
            for resource_logs in request.resource_logs:
                for scope in resource_logs.scope_logs:
                    for record in scope.log_records:
                        found.append(
                            {
                                "body": value_of(record.body),
                                "severity": record.severity_text,
                                "attributes": _attributes(record.attributes),
                                "trace_id": record.trace_id.hex(),
                                "span_id": record.span_id.hex(),
                            }
                        )
        return found

    def every_string(self) -> Iterator[str]:
        """Every key and value anywhere in what was received (spans, resources, metric
        points, log bodies and attributes), as text, for canary searches."""
        with self.lock:
            requests: list[Any] = [*self.traces, *self.metrics, *self.logs]
        for request in requests:
            yield from _strings(request)

    def wait(self, until: Callable[[Collector], bool], timeout: float) -> bool:
        """Poll until ``until(self)`` holds; whether it did in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until(self):
                return True
            time.sleep(0.1)
        return until(self)


def _strings(message: Any) -> Iterator[str]:
    """Every string field of a protobuf message tree (attribute keys and values, names,
    bodies), decoded."""
    for _, value in message.ListFields():
        scalar = isinstance(value, str | bytes | int | float) or hasattr(value, "ListFields")
        for item in [value] if scalar else value:  # else a repeated field
            if isinstance(item, str):
                yield item
            elif hasattr(item, "ListFields"):
                yield from _strings(item)  # ids (bytes) and numbers are no text


class _Handler(BaseHTTPRequestHandler):
    collector: Collector

    def do_POST(self) -> None:
        message_type = _MESSAGES.get(self.path)
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if message_type is None or "protobuf" not in (self.headers.get("content-type") or ""):
            self.send_response(404)
            self.end_headers()
            return
        message = message_type()
        message.ParseFromString(body)
        self.collector.keep(self.path, message)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def otlp_collector() -> Iterator[Collector]:
    """A collector on a free loopback port; ``url`` is what OTEL_EXPORTER_OTLP_ENDPOINT takes."""
    collector = Collector()
    handler = type("Handler", (_Handler,), {"collector": collector})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    collector.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
