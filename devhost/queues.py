"""Queue triggers with the runtime's semantics.

Polling backs off exponentially to ``maxPollingInterval`` while the queue is empty
and resets when messages arrive (or when this host enqueues to the queue itself).
A batch of ``batchSize`` is fetched whenever at most ``newBatchThreshold`` messages
are in flight. A message is held invisible while its function runs (the lease is
renewed); success deletes it; failure makes it visible again after
``visibilityTimeout``; the failure that reaches ``maxDequeueCount`` moves it, body
unchanged, to ``<queue>-poison``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.queue import QueueMessage as QueueTriggerMessage
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient

from shared.platform.names import poison_queue

from .catalog import FunctionSpec
from .config import QueueOptions
from .invoker import Invoker, resolve_settings
from .storage import HostStorage

__all__ = ["LEASE_SECONDS", "QueueListener"]

log = logging.getLogger("devhost")
# Invisibility while a function runs, renewed at half-time; after a crash the message
# returns when it ends. DEVHOST_QUEUE_LEASE_SECONDS shortens it for crash tests.
LEASE_SECONDS = int(os.environ.get("DEVHOST_QUEUE_LEASE_SECONDS", "60"))
_FIRST_EMPTY_WAIT = 0.2


class QueueListener:
    """Feeds one queue-triggered function."""

    def __init__(
        self,
        spec: FunctionSpec,
        storage: HostStorage,
        options: QueueOptions,
        invoker: Invoker,
        environ: dict[str, str],
    ) -> None:
        self.spec = spec
        self.queue_name = resolve_settings(str(spec.trigger.config["queueName"]), environ)
        self._storage = storage
        self._options = options
        self._invoker = invoker
        self._queue: QueueClient = storage.queue_client(self.queue_name)
        self._poison: QueueClient = storage.queue_client(poison_queue(self.queue_name))
        self._wake = asyncio.Event()
        self._capacity = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._annotation = _trigger_annotation(spec)

    def wake(self) -> None:
        """Poll now: a message was just added by this host."""
        self._wake.set()

    async def prepare(self) -> None:
        """Create the queue if it is missing, as the runtime does for triggers."""
        with contextlib.suppress(ResourceExistsError):
            await self._queue.create_queue()

    async def run(self) -> None:
        """Poll until ``stop``; never raises on storage errors, it backs off instead."""
        wait = _FIRST_EMPTY_WAIT
        options = self._options
        while not self._stopping:
            if len(self._tasks) > options.new_batch_threshold:
                self._capacity.clear()
                await self._capacity.wait()
                continue
            try:
                messages = [
                    m
                    async for m in self._queue.receive_messages(
                        messages_per_page=options.batch_size,
                        max_messages=options.batch_size,
                        visibility_timeout=LEASE_SECONDS,
                    )
                ]
            except ResourceNotFoundError:
                log.warning("Queue %r does not exist; waiting for it", self.queue_name)
                messages = []
            except AzureError as exc:
                log.warning(
                    "Polling queue %r failed (%s); backing off", self.queue_name, type(exc).__name__
                )
                messages = []
            except Exception as exc:  # a listener must outlive any surprise
                log.error("Polling queue %r failed; backing off", self.queue_name, exc_info=exc)
                messages = []
            if self._stopping:
                # Fetched during shutdown: let the lease lapse so another host takes them.
                break
            for message in messages:
                task = asyncio.create_task(self._process(message))
                self._tasks.add(task)
                task.add_done_callback(self._done)
            if messages:
                wait = _FIRST_EMPTY_WAIT
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            wait = min(wait * 2, options.max_polling_interval)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._capacity.set()

    async def stop(self) -> None:
        """Stop fetching; wait for the messages already taken to finish."""
        self._stopping = True
        self._wake.set()
        self._capacity.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _decode(self, content: str) -> bytes | None:
        if self._options.message_encoding == "none":
            return content.encode()
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            return None

    def _trigger_value(self, message: QueueMessage, body: bytes) -> Any:
        if self._annotation == "str":
            return body.decode("utf-8")
        if self._annotation == "bytes":
            return body
        return QueueTriggerMessage(  # type: ignore[no-untyped-call]
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )

    async def _process(self, message: QueueMessage) -> None:
        receipt = [message.pop_receipt]
        body = self._decode(message.content)
        if body is None:
            log.error(
                "Queue %r message %s is not valid base64 (messageEncoding is base64); "
                "moving it to %r unchanged",
                self.queue_name,
                message.id,
                poison_queue(self.queue_name),
            )
            await self._to_poison(message, receipt[0])
            return
        renewer = asyncio.create_task(self._renew(message, receipt))
        try:
            value = self._trigger_value(message, body)
            metadata: dict[str, Any] = {"Id": message.id, "DequeueCount": message.dequeue_count}
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                parsed = json.loads(body)
                if isinstance(parsed, dict):
                    metadata = {**parsed, **metadata}
            await self._invoker.invoke(
                self.spec,
                value,
                metadata,
                reason=f"New queue message detected on '{self.queue_name}'.",
            )
        except Exception as exc:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            log.warning(
                "Function 'Functions.%s' failed on message %s (attempt %d of %d): %s",
                self.spec.name,
                message.id,
                message.dequeue_count,
                self._options.max_dequeue_count,
                type(exc).__name__,
                exc_info=exc,
            )
            await self._after_failure(message, receipt[0])
            return
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        try:
            await self._queue.delete_message(message.id, receipt[0])
        except AzureError as exc:
            log.warning(
                "Could not delete message %s from %r (%s); it will be delivered again",
                message.id,
                self.queue_name,
                type(exc).__name__,
            )

    async def _renew(self, message: QueueMessage, receipt: list[str | None]) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 2)
            try:
                updated = await self._queue.update_message(
                    message.id, receipt[0], visibility_timeout=LEASE_SECONDS
                )
                receipt[0] = updated.pop_receipt
            except AzureError as exc:
                log.warning(
                    "Could not renew the lease on message %s (%s)", message.id, type(exc).__name__
                )

    async def _after_failure(self, message: QueueMessage, receipt: str | None) -> None:
        if (
            message.dequeue_count is not None
            and message.dequeue_count >= self._options.max_dequeue_count
        ):
            log.error(
                "Message %s failed %d times; moving it to %r",
                message.id,
                message.dequeue_count,
                poison_queue(self.queue_name),
            )
            await self._to_poison(message, receipt)
            return
        try:
            await self._queue.update_message(
                message.id, receipt, visibility_timeout=int(self._options.visibility_timeout)
            )
        except AzureError as exc:
            log.warning(
                "Could not release message %s (%s); it returns when its lease ends",
                message.id,
                type(exc).__name__,
            )

    async def _to_poison(self, message: QueueMessage, receipt: str | None) -> None:
        try:
            with contextlib.suppress(ResourceExistsError):
                await self._poison.create_queue()
            await self._poison.send_message(message.content)
            await self._queue.delete_message(message.id, receipt)
        except AzureError as exc:
            log.error(
                "Could not move message %s to the poison queue (%s); it stays on %r",
                message.id,
                type(exc).__name__,
                self.queue_name,
            )


def _trigger_annotation(spec: FunctionSpec) -> str:
    import inspect

    annotation = inspect.signature(spec.user_function).parameters[spec.trigger.name].annotation
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return name.rsplit(".", 1)[-1]
