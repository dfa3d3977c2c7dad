"""Runs the configured listeners until SIGINT or SIGTERM, then lets messages in progress
finish: a message that was stored gets its ACK."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from shared import wiring
from shared.platform.errors import ConfigurationError

from .config import ListenerConfig
from .server import MllpServer

__all__ = ["run_listeners", "start_listeners"]

log = logging.getLogger(__name__)


async def start_listeners(
    listeners: list[ListenerConfig], workers: ThreadPoolExecutor
) -> list[MllpServer]:
    """Bind every listener (wired from the app settings in the environment).

    Raises:
        ConfigurationError: a listener's ``max_bytes`` is over INTAKE_HTTP_MAX_BYTES, which
            the submission service holds every message to.
    """
    max_bytes = wiring.settings().http_max_bytes
    for config in listeners:
        if config.max_bytes is not None and config.max_bytes > max_bytes:
            raise ConfigurationError(
                f"listener on port {config.port}: max_bytes {config.max_bytes} is over "
                f"INTAKE_HTTP_MAX_BYTES ({max_bytes}), which every submission is held to"
            )
    servers = [
        MllpServer(c, wiring.mllp_intake(c.partner, c.enhanced), workers, max_bytes)
        for c in listeners
    ]
    for server in servers:
        await server.start()
    return servers


async def run_listeners(
    listeners: list[ListenerConfig],
    on_ready: Callable[[list[MllpServer]], None] | None = None,
    workers: int = 32,
) -> None:
    """Serve until a stop signal."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mllp") as pool:
        servers = await start_listeners(listeners, pool)
        if on_ready is not None:
            on_ready(servers)
        await stop.wait()
        log.info("mllp: stopping", extra={"stage": "mllp"})
        await asyncio.gather(*(s.stop() for s in servers))
