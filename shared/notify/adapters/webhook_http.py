"""POSTing a signed notification with httpx, to the address the SSRF check approved."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from ..endpoints import Resolver, parse_endpoint, resolve_endpoint, system_resolver
from ..errors import EndpointRefusedError
from ..models import Answer

__all__ = ["HttpWebhookTransport"]

_MAX_READ = 4096  # bytes of a response body we read (and then drop)


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds (a number, or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class HttpWebhookTransport:
    """Webhook POSTs: checked address, no redirects, time-outs, a small body read.

    We connect to the checked IP address, so httpx pools connections by address; one
    client per endpoint host keeps a TLS connection verified for one name from carrying
    requests for another name that shares the address.
    """

    def __init__(
        self,
        *,
        development: bool,
        timeout: float = 10.0,
        resolver: Resolver = system_resolver,
        transport: httpx.BaseTransport | None = None,
        max_hosts: int = 64,
    ) -> None:
        self._development = development
        self._resolver = resolver
        self._timeout = timeout
        self._transport = transport
        self._max_hosts = max_hosts
        self._clients: OrderedDict[str, httpx.Client] = OrderedDict()
        self._lock = threading.Lock()

    def _client(self, origin: str) -> httpx.Client:
        with self._lock:
            client = self._clients.pop(origin, None)
            if client is None:
                client = httpx.Client(
                    timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 5.0)),
                    follow_redirects=False,
                    trust_env=False,  # a proxy from the environment would skip the address check
                    transport=self._transport,
                    headers={"User-Agent": "fhir-intake-webhooks/1"},
                )
            self._clients[origin] = client  # most recently used last
            while len(self._clients) > self._max_hosts:
                self._clients.popitem(last=False)[1].close()
            return client

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST once; never raises for what the endpoint or the network did."""
        started = time.perf_counter()

        def took() -> int:
            return round((time.perf_counter() - started) * 1000)

        try:
            endpoint = parse_endpoint(url, development=self._development)
            address = resolve_endpoint(endpoint, self._resolver)
        except EndpointRefusedError as exc:
            return Answer(None, error=f"refused: {exc}", duration_ms=took())
        target = httpx.URL(url).copy_with(host=address)
        port = "" if endpoint.port in (80, 443) else f":{endpoint.port}"
        host_header = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        client = self._client(f"{endpoint.scheme}://{endpoint.host}:{endpoint.port}")
        request = client.build_request(
            "POST",
            target,
            content=body,
            headers={**headers, "Host": f"{host_header}{port}"},
            extensions={"sni_hostname": endpoint.host} if endpoint.scheme == "https" else {},
        )
        try:
            response = client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            return Answer(None, error=f"time-out ({type(exc).__name__})", duration_ms=took())
        except httpx.HTTPError as exc:
            return Answer(None, error=f"no answer ({type(exc).__name__})", duration_ms=took())
        try:
            read = 0
            for chunk in response.iter_raw():
                read += len(chunk)
                if read >= _MAX_READ:
                    break
        except httpx.HTTPError:
            pass  # the status is what counts; a broken body does not change it
        finally:
            response.close()
        return Answer(
            response.status_code,
            _retry_after(response.headers.get("retry-after"), datetime.now(UTC)),
            duration_ms=took(),
        )

    def close(self) -> None:
        """Close every connection pool."""
        with self._lock:
            while self._clients:
                self._clients.popitem()[1].close()
