"""The HTTP front door: routes requests to HTTP-triggered functions.

It maps aiohttp requests to ``func.HttpRequest`` and ``func.HttpResponse`` back,
enforces auth levels, the body size limit and host.json's request limits, and
answers every host-level error with a FHIR OperationOutcome, never a crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import azure.functions as func
from aiohttp import web

from .catalog import FunctionSpec
from .config import HttpOptions
from .invoker import Invoker
from .keys import KeyRing
from .routing import RouteTable

__all__ = ["HttpFront", "outcome"]

log = logging.getLogger("devhost")
_STREAM_ABOVE = 1024 * 1024
_CHUNK = 64 * 1024


def outcome(status: int, code: str, text: str, **headers: str) -> web.Response:
    """A FHIR OperationOutcome error response."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/fhir+json",
        headers=headers or None,
    )


class HttpFront:
    """Serves every HTTP-triggered function on one address."""

    def __init__(
        self,
        specs: list[FunctionSpec],
        options: HttpOptions,
        keys: KeyRing,
        invoker: Invoker,
    ) -> None:
        self._options = options
        self._keys = keys
        self._invoker = invoker
        self._specs = {s.name: s for s in specs if s.trigger.type == "httpTrigger"}
        self.routes = RouteTable(options.route_prefix)
        for spec in self._specs.values():
            methods = spec.trigger.config.get("methods")
            self.routes.add(
                str(spec.trigger.config.get("route") or spec.name),
                spec.name,
                frozenset(m.upper() for m in methods) if methods else None,
            )
        limit = options.max_concurrent_requests
        self._concurrency = asyncio.Semaphore(limit) if limit > 0 else None
        self._outstanding = 0
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Start listening; returns the bound port (useful with port 0)."""
        app = web.Application(client_max_size=self._options.max_body_bytes)
        # [\s\S], not ".": a path may hold an encoded newline, which "." would not match
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=300,
            auto_decompress=False,  # functions see the body as sent, as in Azure
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=512)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        return self.port

    async def stop(self) -> None:
        """Stop accepting connections, let in-flight requests finish, then close."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        limit = self._options.max_outstanding_requests
        if limit > 0 and self._outstanding >= limit:
            return outcome(
                429, "throttled", "too many outstanding requests", **{"Retry-After": "1"}
            )
        self._outstanding += 1
        try:
            return await self._dispatch(request)
        finally:
            self._outstanding -= 1

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        resolved = self.routes.resolve(request.raw_path.split("?", 1)[0], request.method)
        if resolved is None:
            log.info("HTTP %s: no function matches the route", request.method)
            return outcome(404, "not-found", f"no function is bound to {request.path}")
        if isinstance(resolved, set):
            return outcome(
                405,
                "not-supported",
                f"{request.method} is not allowed here",
                Allow=", ".join(sorted(resolved)),
            )
        name, route_params = resolved
        spec = self._specs[name]
        # As the Functions host: the header when the request has one (an empty one is no
        # key), else ?code=; the function gets the query as sent either way.
        key = request.headers.get("x-functions-key", request.query.get("code"))
        if not self._keys.allows(str(spec.trigger.config.get("authLevel", "function")), key):
            return outcome(401, "login", "a valid function key is required (x-functions-key)")
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        headers: dict[str, str] = {}
        for header, value in request.headers.items():
            headers[header.lower()] = (
                f"{headers[header.lower()]}, {value}" if header.lower() in headers else value
            )
        req = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=headers,
            params=dict(request.query),
            route_params=route_params,
            body=body,
        )
        try:
            if self._concurrency is None:
                result = await self._invoke(spec, req, route_params)
            else:
                async with self._concurrency:
                    result = await self._invoke(spec, req, route_params)
        except Exception as exc:
            log.error("Function 'Functions.%s' failed: %s", name, type(exc).__name__, exc_info=exc)
            return outcome(500, "exception", "the function failed; see the host log")
        return await self._respond(request, result, name)

    async def _invoke(
        self, spec: FunctionSpec, req: func.HttpRequest, params: dict[str, str]
    ) -> Any:
        return await self._invoker.invoke(spec, req, {**params}, reason="HTTP request")

    async def _read_body(self, request: web.Request) -> bytes | web.Response:
        limit = self._options.max_body_bytes
        too_big = outcome(
            413, "too-costly", f"request body is over the {limit}-byte limit", Connection="close"
        )
        if request.content_length is not None and request.content_length > limit:
            return too_big
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > limit:
                return too_big
            chunks.append(chunk)
        return b"".join(chunks)

    async def _respond(self, request: web.Request, result: Any, name: str) -> web.StreamResponse:
        if result is None:
            return web.Response(status=204)
        if isinstance(result, str):
            result = func.HttpResponse(result)
        elif isinstance(result, bytes | bytearray):
            result = func.HttpResponse(bytes(result), mimetype="application/octet-stream")
        if not isinstance(result, func.HttpResponse):
            log.error(
                "Function 'Functions.%s' returned %s, not an HttpResponse",
                name,
                type(result).__name__,
            )
            return outcome(500, "exception", "the function returned no HTTP response")
        headers = dict(result.headers.items())
        if not any(h.lower() == "content-type" for h in headers):
            headers["Content-Type"] = (
                f"{result.mimetype or 'text/plain'}; charset={result.charset or 'utf-8'}"
            )
        payload = result.get_body() or b""
        if len(payload) <= _STREAM_ABOVE:
            return web.Response(status=result.status_code, body=payload, headers=headers)
        stream = web.StreamResponse(status=result.status_code, headers=headers)
        stream.content_length = len(payload)
        await stream.prepare(request)
        view = memoryview(payload)
        for start in range(0, len(payload), _CHUNK):
            await stream.write(view[start : start + _CHUNK])
        await stream.write_eof()
        return stream
