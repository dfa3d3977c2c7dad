"""Finds, starts and stops Azurite, the Azure Storage emulator (npm ``azurite``).

The repo pins Azurite in package.json and installs it into ``node_modules`` (``make
setup``). A started Azurite gets its own session so Ctrl-C reaches the host first
(which still needs storage to finish its work), and on Linux it is told to die with
its parent, so nothing is left running even if the parent is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .private_files import PRIVATE_UMASK, open_private_log, private_dir

__all__ = [
    "AzuriteError",
    "AzuriteProcess",
    "free_storage_ports",
    "ports_listening",
    "start_azurite",
    "start_azurite_on_free_ports",
]

DEFAULT_PORTS = (10000, 10001, 10002)


class AzuriteError(RuntimeError):
    """Azurite is not installed or did not come up."""


def ports_listening(host: str, ports: tuple[int, ...]) -> list[int]:
    """The ports among ``ports`` that accept a TCP connection now."""
    open_ports = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((host, port)) == 0:
                open_ports.append(port)
    return open_ports


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class AzuriteProcess:
    """A running Azurite this process started."""

    process: subprocess.Popen[bytes]
    ports: tuple[int, int, int]

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate Azurite and its children; kill them if they do not exit in time."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)


def azurite_binary(root: Path) -> Path:
    """The repo's pinned Azurite launcher.

    Raises:
        AzuriteError: it is not installed (run ``make setup``).
    """
    binary = root / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise AzuriteError(f"Azurite is not installed at {binary}; run 'make setup' (npm ci)")
    return binary


def start_azurite(
    root: Path,
    location: Path,
    *,
    host: str = "127.0.0.1",
    ports: tuple[int, int, int] = (10000, 10001, 10002),
    in_memory: bool = False,
    log_file: Path | None = None,
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
) -> AzuriteProcess:
    """Start blob, queue and table services and wait until all three accept connections.

    ``extra_args`` go to Azurite as they are (``--oauth basic --cert ... --key ...``: HTTPS
    with bearer tokens, which user delegation keys need).

    Raises:
        AzuriteError: it is not installed, exits early, or does not listen in time.
    """
    binary = azurite_binary(root)
    private_dir(location)  # every payload and record lives here
    args = [
        str(binary),
        "--silent",
        "--skipApiVersionCheck",
        "--disableProductStyleUrl",
        "--blobHost",
        host,
        "--blobPort",
        str(ports[0]),
        "--queueHost",
        host,
        "--queuePort",
        str(ports[1]),
        "--tableHost",
        host,
        "--tablePort",
        str(ports[2]),
    ]
    args += ["--inMemoryPersistence"] if in_memory else ["--location", str(location)]
    args += list(extra_args)
    output = open_private_log(log_file) if log_file else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            args,
            cwd=root,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            umask=PRIVATE_UMASK,  # the files Azurite writes are its owner's only
        )
    finally:
        if log_file:
            os.close(output)
    started = AzuriteProcess(process, ports)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AzuriteError(f"Azurite exited with code {process.returncode} while starting")
        if len(ports_listening(host, ports)) == len(ports):
            return started
        time.sleep(0.1)
    started.stop()
    raise AzuriteError(f"Azurite did not listen on {ports} within {timeout:.0f}s")


def free_storage_ports() -> tuple[int, int, int]:
    """Three consecutive ports on 127.0.0.1 nothing listens on now."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            first = int(sock.getsockname()[1])
        ports = (first, first + 1, first + 2)
        if ports[2] < 65536 and not ports_listening("127.0.0.1", ports):
            return ports
    raise AzuriteError("found no three consecutive free ports for Azurite")


def start_azurite_on_free_ports(
    root: Path, location: Path, log_file: Path | None = None
) -> AzuriteProcess:
    """Azurite of its own on three free ports (its ``ports`` say which), trying other
    ports twice more when it cannot bind them: a port free when looked at may be taken
    before Azurite binds it, as happened on a busy CI machine.

    Raises:
        AzuriteError: it did not start on any of them.
    """
    for attempt in range(3):
        try:
            return start_azurite(root, location, ports=free_storage_ports(), log_file=log_file)
        except AzuriteError:
            if attempt == 2:
                raise
    raise AzuriteError("Azurite did not start")  # not reached: the last attempt raises
