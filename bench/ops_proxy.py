"""A counting proxy in front of Azurite: every storage request the product makes, attributed
to the function that made it (the ``fhir-intake-function/<name>`` User-Agent tag of
``shared.platform.transport``; untagged requests are the host's own polls and output
bindings), the service, the operation and the logical target, with the bytes each way.

It forwards bytes unchanged (HTTP/1.1 with Content-Length or chunked bodies, keep-alive),
so Shared Key signatures stay valid and the byte counts are what went over the wire.
"""

from __future__ import annotations

import asyncio
import re
import threading
import traceback
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from devhost.azurite import free_storage_ports

__all__ = ["CountingProxy", "Request"]

_AGENT = re.compile(rb"fhir-intake-function/([A-Za-z0-9_]+)")
_ENTITY = re.compile(r"^([^(]+)\(")
# The first operation of a table transaction: "POST http://host/account/table HTTP/1.1".
_BATCH_TABLE = re.compile(rb"\r\n(?:POST|PUT|MERGE|PATCH|DELETE|GET) [^ ]*?/[^/ ]+/([^/ ?]+) HTTP/")


@dataclass(frozen=True, slots=True)
class Request:
    """One storage request: who, where, what and how big."""

    function: str
    service: str
    operation: str
    target: str
    sent: int
    received: int
    status: int


@dataclass
class _Tally:
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class CountingProxy:
    """Listens on three loopback ports (blob, queue, table) and forwards to Azurite's."""

    def __init__(self, upstream: tuple[int, int, int], prefix: str) -> None:
        self._upstream = upstream
        self._prefix = prefix
        self._tally = _Tally()
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.base_events.Server] = []
        self.ports: tuple[int, int, int] = (0, 0, 0)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        self.ports = free_storage_ports()  # consecutive, as a connection string's are
        services = zip(("blob", "queue", "table"), self._upstream, self.ports, strict=True)
        for service, upstream, port in services:
            server = asyncio.run_coroutine_threadsafe(
                self._listen(service, upstream, port), self._loop
            )
            self._servers.append(server.result(10))
        return self

    def __exit__(self, *_: object) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def take(self) -> list[Request]:
        """The requests counted since the last ``take`` (and forgets them)."""
        with self._tally.lock:
            taken, self._tally.requests = self._tally.requests, []
        return taken

    async def _listen(self, service: str, upstream: int, port: int) -> asyncio.base_events.Server:
        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(service, upstream, reader, writer)

        return await asyncio.start_server(client, "127.0.0.1", port)

    async def _serve(
        self,
        service: str,
        upstream: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                head, body = await _read_message(reader)
                if head is None:
                    break
                method = head.split(b" ", 1)[0].decode()
                answer_head: bytes | None = None
                for _ in range(2):  # Azurite closes idle connections: then once more, anew
                    if up is None or up[0].at_eof():
                        up = await asyncio.open_connection("127.0.0.1", upstream)
                    up[1].write(head + body)
                    await up[1].drain()
                    answer_head, answer_body = await _read_message(up[0], no_body=method == "HEAD")
                    if answer_head is not None:
                        break
                    up = None
                if answer_head is None:
                    break
                # Counted before it is answered, so the tally keeps the caller's order.
                self._count(service, head, body, answer_head, answer_body)
                writer.write(answer_head + answer_body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a side closed, or the proxy is stopping
        except Exception:  # a proxy bug must show, not pass for a storage outage
            traceback.print_exc()
            raise
        finally:
            writer.close()
            if up is not None:
                up[1].close()

    def _count(
        self, service: str, head: bytes, body: bytes, answer_head: bytes, answer_body: bytes
    ) -> None:
        line, _, headers = head.partition(b"\r\n")
        method, target, _ = line.decode("latin-1").split(" ", 2)
        found = _AGENT.search(headers)
        function = found[1].decode() if found else "host"
        status = int(answer_head.split(b" ", 2)[1])
        operation, name = _classify(service, method, target, body, answer_body)
        request = Request(
            function=function,
            service=service,
            operation=operation,
            target=self._logical(name),
            sent=len(head) + len(body),
            received=len(answer_head) + len(answer_body),
            status=status,
        )
        with self._tally.lock:
            self._tally.requests.append(request)

    def _logical(self, name: str) -> str:
        if self._prefix and name.startswith(self._prefix):
            return name[len(self._prefix) :].lstrip("-")
        return name


def _classify(
    service: str, method: str, target: str, body: bytes, answer: bytes
) -> tuple[str, str]:
    """(operation, physical resource name) of one request."""
    url = urlsplit(target)
    parts = [unquote(p) for p in url.path.split("/") if p][1:]  # past the account
    query = parse_qs(url.query)
    comp = query.get("comp", [""])[0]
    name = parts[0] if parts else ""
    if service == "table":
        if name == "$batch":
            inner = _BATCH_TABLE.search(body)
            return "batch", _table_of(inner[1].decode()) if inner else name
        entity = _ENTITY.match(name)
        table = entity[1] if entity else name
        keyed = entity is not None and "PartitionKey=" in name
        verb = {
            "GET": "get" if keyed else "query",
            "POST": "insert",
            "PUT": "replace",
            "PATCH": "merge",
            "MERGE": "merge",
        }
        return verb.get(method, method.lower()), table
    if service == "queue":
        if len(parts) >= 2 and parts[1] == "messages":
            if method == "GET":
                empty = b"<QueueMessage>" not in answer
                return ("receive-empty" if empty else "receive"), name
            verb = {"POST": "send", "DELETE": "delete", "PUT": "update"}
            return verb.get(method, method.lower()), name
        return f"{method.lower()}{'-' + comp if comp else ''}", name
    if len(parts) <= 1:
        return f"{method.lower()}-container{'-' + comp if comp else ''}", name
    verb = {"GET": "read", "PUT": "write", "HEAD": "properties", "DELETE": "delete"}
    return verb.get(method, method.lower()) + (f"-{comp}" if comp else ""), name


def _table_of(name: str) -> str:
    entity = _ENTITY.match(name)
    return entity[1] if entity else name


async def _read_message(
    reader: asyncio.StreamReader, *, no_body: bool = False
) -> tuple[bytes | None, bytes]:
    """One HTTP/1.1 message: its head and its body as sent."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None, b""
    if no_body:
        return head, b""
    lower = head.lower()
    status_line = head.split(b"\r\n", 1)[0]
    if status_line.startswith(b"HTTP/") and status_line.split(b" ")[1] in (b"204", b"304"):
        return head, b""
    if b"\r\ntransfer-encoding: chunked" in lower:
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            chunks.append(size_line + data)
            if size == 0:  # storage sends no trailers
                break
        return head, b"".join(chunks)
    found = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
    length = int(found[1]) if found else 0
    return head, await reader.readexactly(length) if length else b""


def summarize(requests: list[Request]) -> Counter[tuple[str, str, str, str]]:
    """Requests counted by (function, service, operation, target)."""
    return Counter((r.function, r.service, r.operation, r.target) for r in requests)
