"""Forwarding what the store keeps to an existing FHIR server (Azure Health Data Services
or any R4 server) as a ``batch`` of PUTs.

Retries use ``tenacity``: a ``429`` or ``5xx`` answer, or a network failure, is tried
again after the server's ``Retry-After`` when it gives one, else after an exponential
back-off with jitter; entries the server accepted are not sent again, only those it
asked us to retry. Entries it refuses (``4xx``) are final and reported per entry.
When the attempts run out the error is retryable, so the queue brings the message back
(PUTs are idempotent, and so is the store).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from shared.normalize import json_codec
from shared.platform.errors import IntakeError

__all__ = ["FhirForwarder", "ForwardResult", "ForwardingUnavailableError"]

log = logging.getLogger(__name__)


class ForwardingUnavailableError(IntakeError):
    """The FHIR server kept answering 429/5xx, or could not be reached."""

    retryable = True


class _Again(Exception):
    """Internal: some entries are to be sent again (after ``retry_after`` seconds)."""

    def __init__(self, retry_after: float | None, why: str) -> None:
        super().__init__(why)
        self.retry_after = retry_after


@dataclass(slots=True)
class ForwardResult:
    """What the server did with one Bundle's entries."""

    sent: int = 0
    accepted: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (Type/id, HTTP status)
    attempts: int = 0


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own back-off


class FhirForwarder:
    """Sends Bundles to one FHIR server."""

    def __init__(
        self,
        base_url: str,
        client: httpx.Client,
        token: Callable[[], str] | None = None,
        attempts: int = 5,
        max_wait: float = 30.0,
    ) -> None:
        self._url = base_url.rstrip("/")
        self._client = client
        self._token = token
        self._attempts = attempts
        self._backoff = wait_exponential_jitter(multiplier=0.5, max=max_wait)
        self._max_wait = max_wait

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, _Again) and failure.retry_after is not None:
            return min(failure.retry_after, self._max_wait)
        return float(self._backoff(state))

    def forward(self, entries: Sequence[Mapping[str, Any]]) -> ForwardResult:
        """Send the resources of a transaction Bundle's entries as one batch of PUTs.

        Raises:
            ForwardingUnavailableError: the server still asks us to retry after every
                attempt (retryable through the queue).
        """
        pending = {
            f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]
            for e in entries
            if isinstance(e.get("resource"), dict) and e["resource"].get("id")
        }
        result = ForwardResult(sent=len(pending))
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_exception_type((_Again, httpx.TransportError)),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    result.attempts += 1
                    self._send(pending, result)
        except (_Again, httpx.TransportError) as exc:
            raise ForwardingUnavailableError(
                f"the FHIR server did not take {len(pending)} entries: {type(exc).__name__}"
            ) from exc
        return result

    def _send(self, pending: dict[str, Mapping[str, Any]], result: ForwardResult) -> None:
        urls = list(pending)
        batch = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"resource": pending[url], "request": {"method": "PUT", "url": url}} for url in urls
            ],
        }
        headers = {"content-type": "application/fhir+json", "accept": "application/fhir+json"}
        if self._token is not None:
            headers["authorization"] = f"Bearer {self._token()}"
        response = self._client.post(
            self._url, content=json_codec.dumps(batch).encode(), headers=headers
        )
        if response.status_code == 429 or response.status_code >= 500:
            raise _Again(_retry_after(response.headers), f"HTTP {response.status_code}")
        if response.status_code >= 400:
            result.refused += [(url, str(response.status_code)) for url in urls]
            pending.clear()
            return
        answers = (response.json().get("entry") or []) if response.content else []
        retry = False
        for url, answer in zip(urls, answers, strict=False):
            status = str((answer.get("response") or {}).get("status", "")).split(" ")[0]
            if status.startswith("2"):
                result.accepted += 1
                del pending[url]
            elif status == "429" or status.startswith("5"):
                retry = True  # stays pending
            else:
                result.refused.append((url, status or "no status"))
                del pending[url]
        if len(answers) < len(urls):  # the server skipped entries: send those again
            retry = True
        if retry and pending:
            raise _Again(None, f"{len(pending)} entries to send again")
