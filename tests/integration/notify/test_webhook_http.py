"""Webhook POSTs over real loopback HTTP: what is sent, redirects, time-outs, refusals."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from shared.notify.adapters import HttpWebhookTransport
from tests.support.serving import serve
from tests.support.webhook_receiver import webhook_receiver


def test_posts_the_exact_body_and_headers_in_development() -> None:
    with webhook_receiver([(200, {})]) as receiver:
        transport = HttpWebhookTransport(development=True, timeout=5)
        answer = transport.post(
            f"{receiver.url}/hooks/in?x=1",
            b'{"a":1}',
            {"webhook-id": "msg_1", "Content-Type": "application/fhir+json"},
        )
        assert answer.status == 200 and answer.error is None
        got = receiver.received[0]
        assert got.path == "/hooks/in?x=1"
        assert got.body == b'{"a":1}'
        assert got.headers["webhook-id"] == "msg_1"
        assert got.headers["host"] == receiver.url.removeprefix("http://")


def test_loopback_is_refused_outside_development_before_connecting() -> None:
    with webhook_receiver() as receiver:
        transport = HttpWebhookTransport(development=False, timeout=5)
        answer = transport.post(f"{receiver.url}/in", b"{}", {})
        https = transport.post(receiver.url.replace("http://", "https://") + "/in", b"{}", {})
        time.sleep(0.2)
        assert answer.status is None and "https" in (answer.error or "")
        assert https.status is None and "loopback" in (https.error or "")
        assert receiver.received == []


def test_redirects_are_not_followed() -> None:
    with webhook_receiver() as inside, webhook_receiver() as outside:
        outside.script.append((307, {"Location": f"{inside.url}/metadata"}))
        answer = HttpWebhookTransport(development=True).post(f"{outside.url}/in", b"{}", {})
        time.sleep(0.2)
        assert answer.status == 307
        assert inside.received == []  # the redirect target was never called


def test_retry_after_as_seconds_or_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=90)
    script = [
        (503, {"Retry-After": "30"}),
        (429, {"Retry-After": format_datetime(later, usegmt=True)}),
    ]
    with webhook_receiver(script) as receiver:
        transport = HttpWebhookTransport(development=True)
        assert transport.post(receiver.url, b"{}", {}).retry_after == 30
        dated = transport.post(receiver.url, b"{}", {}).retry_after
        assert dated is not None and 80 <= dated <= 91


@contextmanager
def slow_server(seconds: float) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            time.sleep(seconds)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    with serve(Handler) as url:
        yield url


def test_a_slow_endpoint_times_out() -> None:
    with slow_server(1.5) as url:
        started = time.monotonic()
        answer = HttpWebhookTransport(development=True, timeout=0.3).post(url, b"{}", {})
        assert answer.status is None and (answer.error or "").startswith("time-out")
        assert time.monotonic() - started < 1.2


def test_nothing_listening_is_an_error_not_an_exception() -> None:
    with webhook_receiver() as receiver:
        url = receiver.url
    answer = HttpWebhookTransport(development=True, timeout=1).post(url, b"{}", {})
    assert answer.status is None and (answer.error or "").startswith("no answer")
