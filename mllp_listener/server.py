"""The asyncio MLLP server: many connections at once, one message at a time per
connection, in order; each ACK written only after its payload is stored.

Storage calls are blocking (the Azure SDK), so each message runs on a worker thread
while the event loop keeps serving the other connections. Time-outs: a connection with
no frame begun for ``idle_timeout`` is closed (bytes outside frames do not keep it
open); a frame not finished within ``read_timeout`` of its start is dropped unanswered
(the sender resends it); an ACK the sender does not read within ``write_timeout`` closes
the connection. A message that could not be stored for now (AR/CE) closes the
connection after its ACK, so the sender's resend comes before anything it pipelined
after it. Application ACKs (enhanced mode) go to the partner's return address, or on
the connection when the listener is set to it, never interleaved otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections import Counter
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
_RETURN_ATTEMPTS = 3
# ACKs are small: a sender that stops reading them should back up into our write time-out
# after a few hundred, not after megabytes of kernel buffer.
_SEND_BUFFER = 64 * 1024


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


class _Closing(Exception):  # a signal inside this module, never raised past it
    """The connection is to be closed (a write time-out, a transient failure, noise)."""


@dataclass
class _Connection:
    """One sender's connection: its writer, shared by commit and application ACKs."""

    peer: str
    writer: asyncio.StreamWriter
    write_timeout: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: set[asyncio.Task[None]] = field(default_factory=set)
    messages: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # bytes by kind, and frames

    async def send(self, ack: bytes) -> None:
        """Write one framed ACK; a sender that does not read it in time is dropped."""
        async with self.lock:
            self.writer.write(frame(ack))
            try:
                await asyncio.wait_for(self.writer.drain(), self.write_timeout)
            except TimeoutError:
                raise _Closing("write time-out") from None


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
        self._per_peer: Counter[str] = Counter()
        self._returning: set[asyncio.Task[None]] = set()  # ACKs for return addresses

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose, for port 0)."""
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and listen."""
        context = tls_context(self._config)
        self._server = await asyncio.start_server(
            self._serve,
            self._config.host,
            self._config.port,
            ssl=context,
            ssl_handshake_timeout=self._config.read_timeout if context else None,
            limit=_CHUNK,
        )
        log.info(
            "mllp: listening",
            extra={
                "stage": "mllp",
                "partner": self._intake.partner_id,
                "port": self.port,
                "tls": context is not None,
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
        for task in self._returning:  # GET /api/ingest/{id}/ack still has them
            task.cancel()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        address = (writer.get_extra_info("peername") or ("?", 0))[:2]
        host, peer = str(address[0]), ":".join(str(p) for p in address)
        crowded = len(self._open) >= self._config.max_connections
        if crowded or self._per_peer[host] >= self._config.max_connections_per_peer:
            log.warning(
                "mllp: too many connections" + ("" if crowded else " from this sender"),
                extra={"stage": "mllp", "peer": peer},
            )
            writer.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
        self._open.add(task)
        self._per_peer[host] += 1
        connection = _Connection(peer, writer, self._config.write_timeout)
        try:
            await self._read(reader, connection)
        except _Closing as why:
            log.info(f"mllp: closing: {why}", extra={"stage": "mllp", "peer": peer})
        except (ConnectionError, ssl.SSLError):
            pass
        except Exception as exc:  # noqa: BLE001 - the boundary: one connection, never the listener
            # The type only: a message's text may quote the message.
            log.error(
                "mllp: connection failed; closing it",
                extra={"stage": "mllp", "peer": peer, "outcome": type(exc).__name__},
            )
        finally:
            self._open.discard(task)
            self._per_peer[host] -= 1
            if self._per_peer[host] <= 0:
                del self._per_peer[host]
            for waiting in connection.waiting:
                waiting.cancel()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                if writer.transport.get_write_buffer_size():
                    writer.transport.abort()  # ACKs nobody reads: do not wait to flush them
                else:
                    writer.close()
                    await asyncio.wait_for(writer.wait_closed(), 5)
            if connection.skipped:
                log.warning(
                    "mllp: skipped on this connection",
                    extra={"stage": "mllp", "peer": peer, **dict(connection.skipped)},
                )
            log.info(
                "mllp: connection closed",
                extra={"stage": "mllp", "peer": peer, "count": connection.messages},
            )

    async def _read(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        loop = asyncio.get_running_loop()
        frames = FrameReader(self._max_bytes)
        idle_since = loop.time()  # the last frame's end (or the connection's start)
        frame_since: float | None = None  # when the frame now being read began
        while True:
            if frame_since is not None:
                what, deadline = "read", frame_since + self._config.read_timeout
            else:
                what, deadline = "idle", idle_since + self._config.idle_timeout
            try:
                chunk = await asyncio.wait_for(
                    reader.read(_CHUNK), max(0.0, deadline - loop.time())
                )
            except TimeoutError:
                raise _Closing(f"{what} time-out ({frames.partial} bytes pending)") from None
            if not chunk:
                if frames.in_frame:
                    log.warning(
                        "mllp: connection closed inside a frame; it is not answered",
                        extra={"stage": "mllp", "peer": connection.peer, "bytes": frames.partial},
                    )
                return
            events = frames.feed(chunk)
            await self._handle(events, connection)
            # Times count from after our own work: the sender waited for those ACKs.
            now = loop.time()
            if any(isinstance(e, Frame | Oversized | Broken) for e in events):
                idle_since, frame_since = now, (now if frames.in_frame else None)
            elif frames.in_frame and frame_since is None:
                frame_since = now

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
                if received.transient:
                    raise _Closing("a message could not be stored now; the sender resends it")
                if received.pending is not None:
                    self._await_application_ack(received.pending, connection)
            elif isinstance(event, Oversized):
                ack = self._intake.refuse_oversized(event.head, event.size, self._max_bytes)
                if ack is not None:
                    await connection.send(ack)
                log.warning(
                    "mllp: frame over the size limit refused",
                    extra={"stage": "mllp", "peer": connection.peer, "bytes": event.size},
                )
            elif isinstance(event, Garbage | Broken):
                self._skipped(event, connection)

    def _skipped(self, event: Garbage | Broken, connection: _Connection) -> None:
        """Count what was skipped (its size, never its bytes); log the first of each kind
        and close a connection that sends mostly noise."""
        kind = "garbage_bytes" if isinstance(event, Garbage) else "broken_bytes"
        if not connection.skipped[kind]:
            what = "bytes outside a frame" if isinstance(event, Garbage) else "a broken frame"
            log.warning(
                f"mllp: skipped {what} (later ones are counted at the end)",
                extra={"stage": "mllp", "peer": connection.peer, "bytes": event.size},
            )
        connection.skipped[kind] += event.size
        if isinstance(event, Broken):
            connection.skipped["broken_frames"] += 1
        noise = connection.skipped["garbage_bytes"] + connection.skipped["broken_bytes"]
        if noise > self._config.max_skipped_bytes:
            raise _Closing(f"over {self._config.max_skipped_bytes} bytes skipped")

    def _await_application_ack(
        self, pending: PendingApplicationAck, connection: _Connection
    ) -> None:
        """Send the application ACK when it is known, where the listener says."""
        target = self._config.application_ack_to
        if target is None:
            return  # GET /api/ingest/{id}/ack has it
        # On the connection, they end with it; to a return address, they outlive it.
        tasks = connection.waiting if target == "connection" else self._returning
        limit = self._config.max_pending_application_acks * (
            1 if target == "connection" else self._config.max_connections
        )
        if len(tasks) >= limit:
            log.warning(
                "mllp: too many application ACKs pending; GET /api/ingest/{id}/ack has it",
                extra={"stage": "mllp", "correlation_id": pending.ingestion_id},
            )
            return
        task = asyncio.create_task(self._application_ack(pending, connection, target))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _application_ack(
        self, pending: PendingApplicationAck, connection: _Connection, target: str
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
            if not done:
                continue
            if ack is None:
                return
            if target == "connection":
                with contextlib.suppress(ConnectionError, ssl.SSLError, _Closing):
                    await connection.send(ack)
                return
            await self._send_to_return_address(ack, target, pending)
            return
        log.warning(
            "mllp: no application ACK in time; GET /api/ingest/{id}/ack gives it later",
            extra={"stage": "mllp", "correlation_id": pending.ingestion_id},
        )

    async def _send_to_return_address(
        self, ack: bytes, target: str, pending: PendingApplicationAck
    ) -> None:
        """One new connection to the sender's own listener per ACK, a few tries."""
        host, _, port = target.rpartition(":")
        context = ssl.create_default_context() if self._config.application_ack_tls else None
        for attempt in range(_RETURN_ATTEMPTS):
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host.strip("[]"), int(port), ssl=context),
                    self._config.write_timeout,
                )
                try:
                    writer.write(frame(ack))
                    await asyncio.wait_for(writer.drain(), self._config.write_timeout)
                    # Acknowledgements are not acknowledged; read what may come, briefly.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(reader.read(_CHUNK), 1.0)
                finally:
                    writer.close()
                    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                        await asyncio.wait_for(writer.wait_closed(), 5)
                return
            except (OSError, ssl.SSLError, TimeoutError):
                await asyncio.sleep(0.5 * 2**attempt)
        log.warning(
            "mllp: the return address did not take the application ACK; "
            "GET /api/ingest/{id}/ack has it",
            extra={"stage": "mllp", "correlation_id": pending.ingestion_id},
        )
