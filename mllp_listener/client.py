"""A small blocking MLLP client, as an interface engine talks to the listener: the demo,
the benchmark and the tests send with it (the tests also use python-hl7's client)."""

from __future__ import annotations

import socket
import ssl
from types import TracebackType

from shared.intake.mllp_framing import Frame, FrameReader, frame

__all__ = ["MllpClient"]


class MllpClient:
    """One connection; ``send`` frames a message, ``receive`` reads the next ACK."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 30.0,
        tls: ssl.SSLContext | None = None,
        max_bytes: int = 1 << 20,
    ) -> None:
        raw = socket.create_connection((host, port), timeout=timeout)
        self._socket: socket.socket = (
            tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
        )
        self._frames = FrameReader(max_bytes)
        self._ready: list[bytes] = []

    def __enter__(self) -> MllpClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._socket.close()

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are, framed or not (tests send broken frames with it)."""
        self._socket.sendall(data)

    def send(self, message: bytes) -> None:
        """One message, framed."""
        self._socket.sendall(frame(message))

    def receive(self) -> bytes:
        """The next whole frame the listener sends.

        Raises:
            ConnectionError: the listener closed the connection first.
            TimeoutError: nothing came within the time-out.
        """
        while not self._ready:
            chunk = self._socket.recv(65536)
            if not chunk:
                raise ConnectionError("the listener closed the connection")
            self._ready += [e.data for e in self._frames.feed(chunk) if isinstance(e, Frame)]
        return self._ready.pop(0)

    def request(self, message: bytes) -> bytes:
        """Send one message and wait for its (first) ACK."""
        self.send(message)
        return self.receive()
