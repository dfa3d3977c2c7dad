"""The asyncio MLLP server: many connections at once, one message at a time per
connection, in order; each ACK written only after its payload is stored.

Storage calls are blocking (the Azure SDK), so each message runs on a worker thread
while the event loop keeps serving the other connections. Time-outs: a connection idle
between frames is closed after ``idle_timeout``; a frame begun and not finished within
``read_timeout`` is dropped unanswered (the sender resends it). Application ACKs (enhanced
mode) are written on the same connection when the journey says how the message went,
interleaved with later commit ACKs; MSA-2 says which message each answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from shared.intake.mllp_framing import Broken, Frame, FrameReader, Garbage, Oversized, frame
from shared.intake.mllp_intake import MllpIntake, PendingApplicationAck
from shared.platform.errors import StorageUnavailableError

from .config import ListenerConfig

__all__ = ["MllpServer", "tls_context"]

log = logging.getLogger(__name__)
_CHUNK = 64 * 1024
_FIRST_POLL, _MAX_POLL = 0.1, 2.0  # seconds between journey reads for an application ACK


def tls_context(config: ListenerConfig) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or later), or None for plain MLLP."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    if config.tls_client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(config.tls_client_ca)
    return context


@dataclass
class _Connection:
    """One sender's connection: its writer, shared by commit and application ACKs."""

    peer: str
    writer: asyncio.StreamWriter
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: set[asyncio.Task[None]] = field(default_factory=set)
    messages: int = 0

    async def send(self, ack: bytes) -> None:
        async with self.lock:
            self.writer.write(frame(ack))
            await self.writer.drain()


class MllpServer:
    """Serves one listener: its port, its partner, its limits."""

    def __init__(
        self,
        config: ListenerConfig,
        intake: MllpIntake,
        workers: ThreadPoolExecutor,
        max_bytes: int,
    ) -> None:
        self._config = config
        self._intake = intake
        self._workers = workers
        self._max_bytes = config.max_bytes or max_bytes
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose, for port 0)."""
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and listen."""
        self._server = await asyncio.start_server(
            self._serve,
            self._config.host,
            self._config.port,
            ssl=tls_context(self._config),
            limit=_CHUNK,
        )
        log.info(
            "mllp: listening",
            extra={
                "stage": "mllp",
                "partner": self._intake.partner_id,
                "port": self.port,
                "tls": self._config.tls_cert is not None,
            },
        )

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let messages in progress finish (their ACKs are owed), close."""
        if self._server is None:
            return
        self._server.close()
        if self._open:
            _, late = await asyncio.wait(self._open, timeout=grace)
            for task in late:
                task.cancel()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = ":".join(str(p) for p in (writer.get_extra_info("peername") or ("?",))[:2])
        if len(self._open) >= self._config.max_connections:
            log.warning("mllp: too many connections", extra={"stage": "mllp", "peer": peer})
            writer.close()
            return
        self._open.add(task)
        connection = _Connection(peer, writer)
        try:
            await self._read(reader, connection)
        finally:
            self._open.discard(task)
            for waiting in connection.waiting:
                waiting.cancel()
            with contextlib.suppress(OSError, ssl.SSLError):
                writer.close()
                await writer.wait_closed()
            log.info(
                "mllp: connection closed",
                extra={"stage": "mllp", "peer": peer, "count": connection.messages},
            )

    async def _read(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        frames = FrameReader(self._max_bytes)
        while True:
            limit = self._config.read_timeout if frames.in_frame else self._config.idle_timeout
            try:
                chunk = await asyncio.wait_for(reader.read(_CHUNK), limit)
            except TimeoutError:
                what = "read" if frames.in_frame else "idle"
                log.info(
                    f"mllp: {what} time-out, closing",
                    extra={"stage": "mllp", "peer": connection.peer, "bytes": frames.partial},
                )
                return
            except (ConnectionError, ssl.SSLError):
                return
            if not chunk:
                if frames.in_frame:
                    log.warning(
                        "mllp: connection closed inside a frame; it is not answered",
                        extra={"stage": "mllp", "peer": connection.peer, "bytes": frames.partial},
                    )
                return
            try:
                await self._handle(frames.feed(chunk), connection)
            except (ConnectionError, ssl.SSLError):
                return

    async def _handle(self, events: Iterable[object], connection: _Connection) -> None:
        loop = asyncio.get_running_loop()
        for event in events:
            if isinstance(event, Frame):
                started = time.perf_counter()
                received = await loop.run_in_executor(
                    self._workers, self._intake.receive, event.data
                )
                if received.ack is not None:
                    await connection.send(received.ack)
                connection.messages += 1
                log.info(
                    "mllp: acknowledged",
                    extra={
                        "stage": "mllp",
                        "partner": self._intake.partner_id,
                        "correlation_id": received.ingestion_id,
                        "outcome": received.code,
                        "bytes": len(event.data),
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
                if received.pending is not None:
                    task = asyncio.create_task(self._application_ack(received.pending, connection))
                    connection.waiting.add(task)
                    task.add_done_callback(connection.waiting.discard)
            elif isinstance(event, Oversized):
                ack = self._intake.refuse_oversized(event.head, event.size, self._max_bytes)
                await connection.send(ack)
                log.warning(
                    "mllp: frame over the size limit refused",
                    extra={"stage": "mllp", "peer": connection.peer, "bytes": event.size},
                )
            elif isinstance(event, Garbage | Broken):
                kind = "bytes outside a frame" if isinstance(event, Garbage) else "a broken frame"
                log.warning(
                    f"mllp: skipped {kind}",
                    extra={"stage": "mllp", "peer": connection.peer, "bytes": event.size},
                )

    async def _application_ack(
        self, pending: PendingApplicationAck, connection: _Connection
    ) -> None:
        """Wait for the journey to say how the message went, then send its ACK."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.application_ack_timeout
        pause = _FIRST_POLL
        while loop.time() < deadline:
            await asyncio.sleep(pause)
            pause = min(pause * 2, _MAX_POLL)
            try:
                done, ack = await loop.run_in_executor(
                    self._workers, self._intake.application_ack, pending
                )
            except StorageUnavailableError:
                continue
            if done:
                if ack is not None:
                    with contextlib.suppress(ConnectionError, ssl.SSLError):
                        await connection.send(ack)
                return
        log.warning(
            "mllp: no application ACK in time; GET /api/ingest/{id}/ack gives it later",
            extra={"stage": "mllp", "correlation_id": pending.ingestion_id},
        )
