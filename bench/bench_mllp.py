"""MLLP intake under load: HL7 v2 messages to stored over 1, 8 and 32 connections through
``intake mllp``, against the same messages over ``POST /api/ingest`` in the same run, with
ACK latency p50/p99.

Each connection (MLLP socket or HTTP client) sends one message, waits for its ACK, then
sends the next, as interface engines do; every message is different (MSH-10, PID-3). The
later stages are switched off (``AzureWebJobs.<fn>.Disabled``) so the figure is intake's
own: the accepted messages wait in the ``normalize`` queue. Afterwards every AA counted
must have its ingestion on record (nothing acknowledged was lost). Last, a second
listener whose storage goes through the counting proxy of ``bench-ops`` sends
``COUNTED`` messages over one connection: the storage requests and bytes per message.

Usage: python -m bench.bench_mllp [--messages N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.figures import machine_facts
from bench.host import FUNCTION_KEY, REPO, intake_only_with_partner, product_host
from bench.storage import bench_storage
from intake_cli.child_host import start_child_listener, stop_child_host

CONNECTIONS = (1, 8, 32)
COUNTED = 100
DOWNSTREAM = ("normalize", "consent_check", "store", "notify", "deliver", "process_drop")


def message(n: int) -> bytes:
    """The n-th load message (synthetic)."""
    return (
        f"MSH|^~\\&|LOAD|LOADHOSP|INTAKE|INTAKE|20260301101500||ADT^A01^ADT_A01|L-{n}|P|2.5.1\r"
        "EVN|A01|20260301101500\r"
        f"PID|1||L-{n}^^^&2.16.840.1.113883.19.5&ISO^MR||Load^Test||19700101|F\r"
        "PV1|1|I|WARD-1^1^A^LOADHOSP|||||||MED\r"
    ).encode()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _drive(
    connections: int, numbers: list[int], send: Callable[[int, Any], str], open_: Callable[[], Any]
) -> dict[str, Any]:
    """Send ``numbers`` over ``connections`` senders; rate, latency and ACK codes."""
    latencies: list[float] = []
    codes: dict[str, int] = {}
    lock = threading.Lock()
    shares = [numbers[c::connections] for c in range(connections)]

    def sender(share: list[int]) -> None:
        channel = open_()
        try:
            for n in share:
                started = time.perf_counter()
                code = send(n, channel)
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
                    codes[code] = codes.get(code, 0) + 1
        finally:
            channel.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=connections) as pool:
        list(pool.map(sender, shares))
    elapsed = time.perf_counter() - started
    return {
        "connections": connections,
        "messages": len(numbers),
        "messages_per_s": len(numbers) / elapsed,
        "ack_latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 1),
            "p99": round(_percentile(latencies, 0.99) * 1000, 1),
        },
        "acks": codes,
    }


def run(messages: int, work: Path) -> dict[str, Any]:
    from mllp_listener.client import MllpClient
    from shared import wiring
    from shared.platform.names import Table

    env, key = intake_only_with_partner(DOWNSTREAM, "load")
    listener, port = start_child_listener(REPO, work, env, "load")
    results: dict[str, list[dict[str, Any]]] = {"mllp": [], "http": []}
    counter = iter(range(10**9))
    try:
        with product_host(env, work) as base:

            def mllp_send(n: int, client: MllpClient) -> str:
                return client.request(message(n)).split(b"\r")[1].split(b"|")[1].decode()

            def http_send(n: int, client: httpx.Client) -> str:
                answer = client.post("/ingest", content=message(n))
                return answer.text.split("\r")[1].split("|")[1]

            def http_open() -> httpx.Client:
                return httpx.Client(
                    base_url=base,
                    timeout=60,
                    headers={
                        "x-functions-key": FUNCTION_KEY,
                        "x-api-key": key,
                        "content-type": "x-application/hl7-v2+er7",
                        "accept": "x-application/hl7-v2+er7",
                    },
                )

            def mllp_open() -> MllpClient:
                return MllpClient("127.0.0.1", port, timeout=60)

            _drive(4, [next(counter) for _ in range(40)], mllp_send, mllp_open)  # warm up
            _drive(4, [next(counter) for _ in range(40)], http_send, http_open)
            for connections in CONNECTIONS:  # alternated, so both see the same machine
                results["mllp"].append(
                    _drive(
                        connections, [next(counter) for _ in range(messages)], mllp_send, mllp_open
                    )
                )
                results["http"].append(
                    _drive(
                        connections, [next(counter) for _ in range(messages)], http_send, http_open
                    )
                )
            counted = _count_requests(env, work, counter)
    finally:
        stop_child_host(listener)
    table = wiring.storage().table_client(Table.INGESTIONS)
    rows = table.query_entities("PartitionKey eq 'load'", select=["received_channel"])
    on_record: dict[str, int] = {}
    for row in rows:
        channel = str(row.get("received_channel") or "")
        on_record[channel] = on_record.get(channel, 0) + 1
    return {
        **machine_facts(),
        "messages_per_case": messages,
        **results,
        "on_record": on_record,
        "storage_per_message": counted,
    }


def _count_requests(env: dict[str, str], work: Path, counter: Any) -> dict[str, Any]:
    """Storage requests and bytes per MLLP message, through the counting proxy."""
    from bench.ops_proxy import CountingProxy
    from mllp_listener.client import MllpClient
    from shared.platform.names import Setting
    from shared.platform.settings import development_connection_string

    found = [int(p) for p in re.findall(r"Endpoint=https?://[^:/]+:(\d+)", env[Setting.STORAGE])]
    upstream = (found[0], found[1], found[2])  # blob, queue, table, as the string names them
    for attempt in range(3):  # the free ports it picks may be taken before it binds them
        proxy = CountingProxy(upstream, env["INTAKE_STORAGE_PREFIX"])
        try:
            proxy.__enter__()
            break
        except OSError:
            proxy.__exit__(None, None, None)
            if attempt == 2:
                raise
    count_dir = work / "counted"
    count_dir.mkdir()
    try:
        proxied = {
            **env,
            "AzureWebJobsStorage": development_connection_string(blob_port=proxy.ports[0]),
        }
        listener, port = start_child_listener(REPO, count_dir, proxied, "load")
        try:
            with MllpClient("127.0.0.1", port, timeout=60) as client:
                client.request(message(next(counter)))  # the partner row, then cached
                proxy.take()
                for _ in range(COUNTED):
                    client.request(message(next(counter)))
                requests = [r for r in proxy.take() if r.operation != "receive-empty"]
        finally:
            stop_child_host(listener)
    finally:
        proxy.__exit__(None, None, None)
    by_operation: dict[str, float] = {}
    for r in requests:
        key = f"{r.service} {r.operation}"
        by_operation[key] = round(by_operation.get(key, 0) + 1 / COUNTED, 6)
    return {
        "messages": COUNTED,
        "requests": len(requests) / COUNTED,
        "bytes": sum(r.sent + r.received for r in requests) / COUNTED,
        "by_operation": dict(sorted(by_operation.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=600, help="per connection count")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with bench_storage("mllp"), tempfile.TemporaryDirectory(prefix="bench-mllp-") as tmp:
        result = run(args.messages, Path(tmp))
    acked = {"mllp": 0, "http": 0}
    for channel in ("mllp", "http"):
        for case in result[channel]:
            lat = case["ack_latency_ms"]
            acked[channel] += case["acks"].get("AA", 0)
            print(
                f"{channel:4} x{case['connections']:<2}: {case['messages_per_s']:7.1f} msg/s, "
                f"ACK p50 {lat['p50']} ms, p99 {lat['p99']} ms; ACKs {case['acks']}"
            )
    for mllp_case, http_case in zip(result["mllp"], result["http"], strict=True):
        ratio = mllp_case["messages_per_s"] / http_case["messages_per_s"]
        print(f"x{mllp_case['connections']:<2}: MLLP/HTTP {ratio:.2f}")
    # Warm-up messages are on record too (40 each); every AA must be.
    print(f"on record {result['on_record']}; acknowledged AA {acked}")
    counted = result["storage_per_message"]
    print(
        f"storage per MLLP message: {counted['requests']:.2f} requests, "
        f"{counted['bytes']:.0f} bytes; {counted['by_operation']}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    lost = any(result["on_record"].get(c, 0) < acked[c] for c in acked)
    others = any(set(case["acks"]) != {"AA"} for c in ("mllp", "http") for case in result[c])
    if lost or others:
        sys.exit(1)


if __name__ == "__main__":
    main()
