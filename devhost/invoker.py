"""Runs one function invocation: builds its arguments, calls it, writes its outputs.

Sync functions run on a thread pool, as the Python worker runs them; async ones run
on the host's event loop. Output bindings are written only after the function
returns without raising, as in the runtime.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.functions import _abc

from shared.platform.transport import invoking

from .catalog import Binding, FunctionSpec
from .storage import HostStorage

__all__ = ["BindingExpressionError", "InvocationContext", "Invoker", "OutValue", "resolve_path"]

log = logging.getLogger("devhost")
_EXPR = re.compile(r"\{([^{}]+)\}")
_SETTING = re.compile(r"%([^%]+)%")


class BindingExpressionError(ValueError):
    """A binding expression names something the invocation does not have."""


class OutValue(func.Out[Any]):
    """An output binding parameter (``func.Out[T]``)."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _Trace(_abc.TraceContext):  # type: ignore[misc]
    def __init__(self, traceparent: str) -> None:
        self._parent = traceparent

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _Retry(_abc.RetryContext):  # type: ignore[misc]
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class InvocationContext(func.Context):  # type: ignore[misc]
    """``func.Context`` for one invocation."""

    _local = threading.local()

    def __init__(self, function_name: str, invocation_id: str, traceparent: str) -> None:
        self._name = function_name
        self._id = invocation_id
        self._trace = _Trace(traceparent)

    @property
    def invocation_id(self) -> str:
        return self._id

    @property
    def thread_local_storage(self) -> threading.local:  # type: ignore[override]
        return self._local

    @property
    def function_name(self) -> str:
        return self._name

    @property
    def function_directory(self) -> str:
        return ""

    @property
    def trace_context(self) -> _abc.TraceContext:
        return self._trace

    @property
    def retry_context(self) -> _abc.RetryContext:
        return _Retry()


def resolve_settings(value: str, environ: Mapping[str, str]) -> str:
    """Replace ``%Name%`` app-setting expressions.

    Raises:
        BindingExpressionError: a named setting does not exist.
    """

    def one(found: re.Match[str]) -> str:
        if found[1] not in environ:
            raise BindingExpressionError(f"app setting {found[1]!r} is not set")
        return environ[found[1]]

    return _SETTING.sub(one, value)


def resolve_path(template: str, metadata: Mapping[str, Any]) -> str:
    """Fill ``{rand-guid}``, ``{DateTime}`` and trigger metadata into a binding path.

    Raises:
        BindingExpressionError: the path names metadata the trigger did not provide.
    """
    lowered = {k.lower(): v for k, v in metadata.items()}

    def one(found: re.Match[str]) -> str:
        key = found[1]
        if key.lower() in {"rand-guid", "sys.randguid"}:
            return str(uuid.uuid4())
        if key.lower() in {"datetime", "sys.utcnow"}:
            return datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
        if key.lower() not in lowered:
            raise BindingExpressionError(f"binding expression {{{key}}} has no value")
        return str(lowered[key.lower()])

    return _EXPR.sub(one, template)


class Invoker:
    """Invokes functions and writes their output bindings."""

    def __init__(
        self,
        storage: HostStorage,
        executor: ThreadPoolExecutor,
        *,
        encode_base64: bool,
        function_timeout: float | None,
        environ: Mapping[str, str],
        on_enqueue: Any = None,
    ) -> None:
        self._storage = storage
        self._executor = executor
        self._base64 = encode_base64
        self._timeout = function_timeout
        self._environ = environ
        self._on_enqueue = on_enqueue
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_idle(self, limit: float | None) -> bool:
        """Wait until no invocation runs; False if ``limit`` seconds ran out first."""
        try:
            await asyncio.wait_for(self._idle.wait(), limit)
        except TimeoutError:
            return False
        return True

    async def invoke(
        self,
        spec: FunctionSpec,
        trigger_value: Any,
        metadata: Mapping[str, Any],
        *,
        reason: str,
        traceparent: str | None = None,
    ) -> Any:
        """Run the function once; returns its return value.

        Raises:
            Exception: whatever the function raised, or TimeoutError past functionTimeout.
        """
        invocation_id = str(uuid.uuid4())
        outs = {
            b.name: OutValue() for b in spec.outputs if b.name != "$return" and b.type != "http"
        }
        http_outs = {
            b.name: OutValue() for b in spec.outputs if b.name != "$return" and b.type == "http"
        }
        kwargs: dict[str, Any] = {spec.trigger.name: trigger_value, **outs, **http_outs}
        if spec.context_param:
            kwargs[spec.context_param] = InvocationContext(
                spec.name,
                invocation_id,
                traceparent or f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
            )
        self.in_flight += 1
        self._idle.clear()
        started = time.perf_counter()
        log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        outcome = "Failed"
        try:
            result = await asyncio.wait_for(self._call(spec, kwargs), self._timeout)
            for binding in spec.outputs:
                if binding.type == "http":
                    continue
                value = result if binding.name == "$return" else outs[binding.name].get()
                if value is not None:
                    await self._write_output(binding, value, metadata)
            if http_outs:
                result = next(iter(http_outs.values())).get()
            outcome = "Succeeded"
            return result
        except TimeoutError:
            log.error(
                "Function 'Functions.%s' timed out after %ss (Id=%s)",
                spec.name,
                self._timeout,
                invocation_id,
            )
            raise
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
            log.info(
                "Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)",
                spec.name,
                outcome,
                invocation_id,
                (time.perf_counter() - started) * 1000,
            )

    async def _call(self, spec: FunctionSpec, kwargs: dict[str, Any]) -> Any:
        if spec.is_async:
            with invoking(spec.name):
                return await spec.user_function(**kwargs)
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()

        def call() -> Any:
            with invoking(spec.name):
                return spec.user_function(**kwargs)

        return await loop.run_in_executor(self._executor, lambda: ctx.run(call))

    async def _write_output(
        self, binding: Binding, value: Any, metadata: Mapping[str, Any]
    ) -> None:
        if binding.type == "queue":
            queue = resolve_settings(str(binding.config["queueName"]), self._environ)
            messages = value if isinstance(value, list) else [value]
            client = self._storage.queue_client(queue)
            for message in messages:
                await client.send_message(self.encode_message(message))
            if self._on_enqueue is not None:
                self._on_enqueue(queue)
        elif binding.type == "blob":
            path = resolve_path(
                resolve_settings(str(binding.config["path"]), self._environ), metadata
            )
            container, _, name = path.partition("/")
            data: bytes
            if isinstance(value, str):
                data = value.encode()
            elif isinstance(value, bytes | bytearray):
                data = bytes(value)
            else:
                data = json.dumps(value).encode()
            await self._storage.container(container).upload_blob(name, data, overwrite=True)

    def encode_message(self, message: Any) -> str:
        """A queue message body as the queue trigger expects it (base64 unless 'none')."""
        if isinstance(message, dict | list):
            message = json.dumps(message)
        raw = message.encode() if isinstance(message, str) else bytes(message)
        return base64.b64encode(raw).decode() if self._base64 else raw.decode()
