"""The local host: loads the app and runs all its triggers until told to stop.

On SIGINT or SIGTERM it stops taking work (no new connections, no new queue
messages, no timers), lets what is in flight finish, closes its clients and
returns; a second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from shared.platform.names import Container, Queue
from shared.platform.settings import load_settings
from shared.platform.transport import on_enqueue

from .blob_events import BlobEventSource
from .catalog import FunctionSpec, build_catalog, load_app, split_disabled
from .config import HostOptions, apply_values, load_host_options, load_local_settings
from .http import HttpFront
from .invoker import Invoker
from .keys import KeyRing
from .queues import QueueListener
from .storage import HostStorage
from .timers import TimerRunner

__all__ = ["HostConfig", "LocalHost"]

log = logging.getLogger("devhost")


@dataclass
class HostConfig:
    """How to start the host; every path is relative to ``root``."""

    root: Path = field(default_factory=Path.cwd)
    app: str = "function_app:app"
    host_json: Path = Path("host.json")
    local_settings: Path = Path("local.settings.json")
    bind: str = "127.0.0.1"
    port: int | None = None
    blob_events: dict[str, str] = field(
        default_factory=lambda: {Container.INGEST_DROP.value: Queue.BLOB_CREATED.value}
    )
    blob_scan_interval: float = 1.0
    drain_timeout: float = 300.0


class LocalHost:
    """One running host."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.port: int | None = None
        self.specs: list[FunctionSpec] = []
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._first_signal = 0.0

    def request_stop(self) -> None:
        """Begin a graceful stop (what SIGINT and SIGTERM do)."""
        now = time.monotonic()
        if self._stop.is_set():
            # One Ctrl-C can reach us twice (from the terminal and from a parent such as
            # make); only a signal a second or more later means "stop now".
            if now - self._first_signal >= 1.0:
                log.warning("Second stop signal: exiting without waiting")
                os._exit(130)
            return
        self._first_signal = now
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """Route SIGINT and SIGTERM to ``request_stop``."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)

    async def run(self, on_ready: Callable[[LocalHost], Awaitable[None]] | None = None) -> None:
        """Start everything, wait for a stop request, then drain and close."""
        cfg = self.config
        local = load_local_settings(cfg.root / cfg.local_settings)
        apply_values(local)
        options: HostOptions = load_host_options(cfg.root / cfg.host_json)
        settings = load_settings()
        app = load_app(cfg.app, cfg.root)
        self.specs, skipped = build_catalog(app)
        for line in skipped:
            log.error("Skipping function %s", line)
        self.specs, disabled = split_disabled(self.specs, os.environ)
        for name in disabled:
            log.info("Function %s is disabled (AzureWebJobs.%s.Disabled)", name, name)
        storage = HostStorage.from_settings(settings)
        workers = int(os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", 0)) or min(
            32, (os.cpu_count() or 1) + 4
        )
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="function")
        listeners: dict[str, list[QueueListener]] = {}

        def wake(queue: str) -> None:
            for listener in listeners.get(queue, []):
                listener.wake()

        loop = asyncio.get_running_loop()
        physical: dict[str, str] = {}

        def enqueued(queue: str) -> None:
            """A function of this host enqueued with the SDK: wake that queue's listener
            as for an output binding (called on the function's thread)."""
            if queue in physical:
                loop.call_soon_threadsafe(wake, physical[queue])

        environ = dict(os.environ)
        invoker = Invoker(
            storage,
            executor,
            encode_base64=options.queues.message_encoding == "base64",
            function_timeout=options.function_timeout,
            environ=environ,
            on_enqueue=wake,
        )
        http = HttpFront(
            self.specs,
            options.http,
            KeyRing.from_settings(local.function_keys, local.master_key),
            invoker,
        )
        for spec in self.specs:
            if spec.trigger.type == "queueTrigger":
                listener = QueueListener(spec, storage, options.queues, invoker, environ)
                listeners.setdefault(listener.queue_name, []).append(listener)
        timers = [
            TimerRunner(s, invoker, environ) for s in self.specs if s.trigger.type == "timerTrigger"
        ]
        watchers = [
            BlobEventSource(
                storage, container, queue, interval=cfg.blob_scan_interval, on_enqueue=wake
            )
            for container, queue in cfg.blob_events.items()
        ]
        physical.update({storage.physical(name): name for name in listeners})
        tasks: list[asyncio.Task[None]] = []
        stop_hearing = on_enqueue(enqueued)
        try:
            for listener in (x for group in listeners.values() for x in group):
                await listener.prepare()
            for watcher in watchers:
                await watcher.prepare()
            port = cfg.port if cfg.port is not None else local.port or 7071
            self.port = await http.start(cfg.bind, port)
            for listener in (x for group in listeners.values() for x in group):
                tasks.append(asyncio.create_task(listener.run()))
            tasks += [asyncio.create_task(t.run()) for t in timers]
            tasks += [asyncio.create_task(w.run()) for w in watchers]
            self._log_functions()
            self.ready.set()
            if on_ready is not None:
                await on_ready(self)
            await self._stop.wait()
            log.info(
                "Stopping: no new work is taken; waiting for %d invocation(s) in flight",
                invoker.in_flight,
            )
            for watcher in watchers:
                watcher.stop()
            await asyncio.gather(
                http.stop(),
                *(x.stop() for group in listeners.values() for x in group),
                *(t.stop() for t in timers),
            )
            if not await invoker.wait_idle(cfg.drain_timeout):
                log.error("Stopped with %d invocation(s) still running", invoker.in_flight)
        finally:
            stop_hearing()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await storage.close()
            executor.shutdown(wait=False, cancel_futures=True)
        log.info("Host stopped")

    def _log_functions(self) -> None:
        base = f"http://{self.config.bind}:{self.port}"
        log.info("Functions:")
        for spec in self.specs:
            trigger = spec.trigger
            if trigger.type == "httpTrigger":
                prefix = load_host_options(
                    self.config.root / self.config.host_json
                ).http.route_prefix
                route = str(trigger.config.get("route") or spec.name)
                methods = ",".join(trigger.config.get("methods") or ["ANY"])
                log.info(
                    "  %s: [%s] %s/%s",
                    spec.name,
                    methods,
                    base + (f"/{prefix}" if prefix else ""),
                    route,
                )
            else:
                detail = trigger.config.get("queueName") or trigger.config.get("schedule")
                log.info("  %s: %s (%s)", spec.name, trigger.type, detail)
