"""A Function App that exercises the local host's trigger semantics (tests only).

Each function records what it saw in the ``results`` container, so tests observe it
through real storage, not through the host's internals.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from datetime import UTC, datetime

import azure.functions as func
from azure.core.exceptions import ResourceExistsError

from shared import wiring

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
RESULTS = "results"


def record(path: str, data: dict[str, object]) -> None:
    container = wiring.storage().container(RESULTS)  # type: ignore[arg-type]
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    container.upload_blob(path, json.dumps(data), overwrite=True)


@app.route(route="items/{category:alpha}/{id:int?}", methods=["GET", "POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(
            {
                "route": dict(req.route_params),
                "params": dict(req.params),
                "method": req.method,
                "body_bytes": len(req.get_body()),
                "content_type": req.headers.get("content-type"),
            }
        ),
        mimetype="application/json",
        headers={"X-Echo": "yes"},
    )


@app.route(route="files/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def files(req: func.HttpRequest) -> str:
    return req.route_params.get("path", "")


@app.route(route="admin-only", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin ok")


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("deliberate failure")


@app.route(route="slow", auth_level=func.AuthLevel.ANONYMOUS)
def slow(req: func.HttpRequest) -> func.HttpResponse:
    started = time.time()
    time.sleep(float(req.params.get("s", "2")))
    return func.HttpResponse(
        "finished", headers={"X-Started": repr(started), "X-Ended": repr(time.time())}
    )


@app.route(route="big", auth_level=func.AuthLevel.ANONYMOUS)
def big(req: func.HttpRequest) -> func.HttpResponse:
    size = int(req.params.get("n", "3000000"))
    return func.HttpResponse(
        bytes(i % 251 for i in range(size)), mimetype="application/octet-stream"
    )


@app.route(route="enqueue", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.queue_output(arg_name="out", queue_name="work", connection="AzureWebJobsStorage")
async def enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    out.set(req.get_body().decode())
    return func.HttpResponse(status_code=202)


@app.route(route="enqueue-sdk", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def enqueue_sdk(req: func.HttpRequest) -> func.HttpResponse:
    """Enqueues with the storage SDK, as the product's stages do, not an output binding."""
    wiring.storage().queue_client("work").send_message(req.get_body())
    return func.HttpResponse(status_code=202)


@app.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage, context: func.Context) -> None:
    record(
        f"work/{msg.id}.json",
        {
            "body": msg.get_body().decode(),
            "dequeue_count": msg.dequeue_count,
            "function": context.function_name,
        },
    )


@app.queue_trigger(arg_name="msg", queue_name="flaky", connection="AzureWebJobsStorage")
def flaky(msg: func.QueueMessage) -> None:
    record(
        f"flaky/{msg.id}/{msg.dequeue_count}.json",
        {"at": datetime.now(UTC).timestamp(), "dequeue_count": msg.dequeue_count},
    )
    raise RuntimeError("always fails")


@app.queue_trigger(arg_name="msg", queue_name="slowq", connection="AzureWebJobsStorage")
async def slow_queue(msg: str) -> None:
    import asyncio

    await asyncio.sleep(3)
    record(f"slowq/{uuid.uuid4()}.json", {"body": msg})


@app.queue_trigger(arg_name="msg", queue_name="blob-created", connection="AzureWebJobsStorage")
def on_blob_created(msg: func.QueueMessage) -> None:
    event = json.loads(msg.get_body())
    record(f"events/{event['id']}.json", event)


@app.timer_trigger(arg_name="timer", schedule="* * * * * *")
def tick(timer: func.TimerRequest) -> None:
    record(f"ticks/{uuid.uuid4()}.json", {"past_due": timer.past_due})


@app.route(route="archive/{name}", methods=["PUT"], auth_level=func.AuthLevel.ANONYMOUS)
@app.blob_output(
    arg_name="archived",
    path="results/archive/{name}-{rand-guid}.txt",
    connection="AzureWebJobsStorage",
)
def archive(req: func.HttpRequest, archived: func.Out[bytes]) -> func.HttpResponse:
    archived.set(req.get_body())
    return func.HttpResponse(status_code=201)


@app.queue_trigger(arg_name="msg", queue_name="parallel", connection="AzureWebJobsStorage")
async def parallel(msg: func.QueueMessage) -> None:
    import asyncio

    started = time.time()
    await asyncio.sleep(0.5 + int(msg.get_body()) % 4 * 0.5)  # staggered, so batches overlap
    record(f"parallel/{msg.id}.json", {"start": started, "end": time.time()})
