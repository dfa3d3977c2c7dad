"""End-to-end throughput: HL7 v2 messages posted over HTTP to the local host, through every
stage (normalize, consent, store, notify, deliver) on Azurite, until each is stored and
each admission has reached a subscriber.

Seeded messages (``bench.generate`` ADT A01, ORU R01 and VXU V04 in turn, one patient
each) are posted ``--concurrency`` at a time, each with its own Idempotency-Key; one
subscription (admissions, id-only) delivers to a loopback receiver. Reported: messages/s
from the first acceptance to the last store, and the time from acceptance to stored
(p50/p95/p99, from the ingestion rows' server-side times). The baseline measured in the
same run is what bounds it: Azurite's rate for the table writes every stage makes.

Usage: python -m bench.bench_pipeline [--messages N] [--concurrency N] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.figures import machine_facts
from bench.generate import hl7_mixed_records
from bench.host import FUNCTION_KEY, product_host
from bench.storage import bench_storage


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _post_all(
    base: str, key: str, messages: list[bytes], concurrency: int, prefix: str = "b"
) -> tuple[list[str], list[int]]:
    """Post every message, each until accepted; the ingestion ids and any refusals."""
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for item in enumerate(messages):
        queue.put_nowait(item)
    ids: list[str] = [""] * len(messages)
    refusals: list[int] = []
    headers = {
        "x-functions-key": FUNCTION_KEY,
        "x-api-key": key,
        "content-type": "x-application/hl7-v2+er7",
    }

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            n, body = queue.get_nowait()
            while True:
                answer = await client.post(
                    "/ingest", content=body, headers={**headers, "idempotency-key": f"{prefix}-{n}"}
                )
                if answer.status_code in (200, 202):
                    ids[n] = answer.json()["id"]
                    break
                refusals.append(answer.status_code)
                await asyncio.sleep(0.5)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return ids, refusals


def _drained(clients: Any) -> bool:
    """No message waits in (or is being handled from) a stage's queue."""
    from shared.platform.names import Queue

    stages = (Queue.NORMALIZE, Queue.CONSENT_CHECK, Queue.STORE, Queue.NOTIFY, Queue.DELIVER)
    return all(
        clients.queue_client(q).get_queue_properties().approximate_message_count == 0
        for q in stages
    )


def _storage_baseline(seconds: float = 5.0, threads: int = 16) -> float:
    """Table upserts per second Azurite sustains from 16 threads: the stages' bound."""
    from shared.platform import wiring
    from shared.platform.names import Table

    table = wiring.storage().table_client(Table.CHECKPOINTS)
    stop = time.monotonic() + seconds
    done = [0] * threads

    def hammer(slot: int) -> None:
        n = 0
        while time.monotonic() < stop:
            table.upsert_entity({"PartitionKey": f"bench{slot}", "RowKey": str(n % 50), "n": n})
            n += 1
        done[slot] = n

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(hammer, range(threads)))
    return sum(done) / seconds


def run(messages: int, concurrency: int, work: Path) -> dict[str, Any]:
    from intake_cli.receiver import webhook_receiver
    from shared.pipeline.journey import TableIngestionLog
    from shared.platform import wiring
    from shared.platform.names import Setting, Table
    from shared.platform.provision import provision_storage
    from shared.security import Partner, Role, TablePartnerDirectory

    env = {
        Setting.STORAGE: os.environ[Setting.STORAGE],
        Setting.STORAGE_PREFIX: os.environ[Setting.STORAGE_PREFIX],
        "INTAKE_ENVIRONMENT": "development",
        "INTAKE_LOCAL_SECRETS_FILE": str(work / "secrets.json"),
        "INTAKE_SWEEP_SCHEDULE": "0 */5 * * * *",
    }
    os.environ.update(env)
    wiring.reset_caches()
    provision_storage(wiring.storage())
    directory = TablePartnerDirectory(wiring.storage().table_client(Table.PARTNERS))
    directory.upsert(Partner(id="bench", name="Bench", roles=frozenset({Role.INGEST, Role.READ})))
    key = directory.issue_key("bench").token
    baseline = _storage_baseline()
    bodies = list(itertools.islice(hl7_mixed_records(11), messages))
    admissions = sum(1 for b in bodies if b"|ADT^A01" in b)
    log = TableIngestionLog(wiring.storage().table_client(Table.INGESTIONS))
    with product_host(env, work) as base, webhook_receiver() as receiver:
        created = httpx.post(
            f"{base}/subscriptions",
            json={"topics": ["admission"], "endpoint": f"{receiver.url}/admissions"},
            headers={"x-functions-key": FUNCTION_KEY, "x-api-key": key},
        )
        created.raise_for_status()
        time.sleep(2.5)  # the notify stage re-reads subscriptions every 2 s
        started = time.monotonic()
        ids, refusals = asyncio.run(_post_all(base, key, bodies, concurrency))
        posted = time.monotonic() - started
        # Polling must not load Azurite, which every stage shares: watch the queue depths
        # (one cheap call each), then read the ingestion rows once.
        deadline = time.monotonic() + max(600, messages)
        while time.monotonic() < deadline and not _drained(wiring.storage()):
            time.sleep(2)
        receiver.wait_for(admissions, timeout=max(300, messages / 10))
        delivered = len(receiver.snapshot())
    rows = {i: row for i in ids if (row := log.get("bench", i)) and row.get("store_status")}
    assert len(rows) == messages, f"only {len(rows)} of {messages} stored"
    received = [row["received_at"] for row in rows.values()]
    stored = [row["store_at"] for row in rows.values()]
    span = (max(stored) - min(received)).total_seconds()
    latencies = [(row["store_at"] - row["received_at"]).total_seconds() for row in rows.values()]
    return {
        **machine_facts(),
        "messages": messages,
        "concurrency": concurrency,
        "post_seconds": posted,
        "accepted_per_s": messages / posted,
        "refusals": len(refusals),
        "stored_per_s": messages / span,
        "latency_s": {
            "p50": _percentile(latencies, 0.50),
            "p95": _percentile(latencies, 0.95),
            "p99": _percentile(latencies, 0.99),
            "mean": statistics.fmean(latencies),
        },
        "admissions_notified": delivered,
        "admissions_sent": admissions,
        "baseline_table_upserts_per_s": baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with bench_storage("pipeline"), tempfile.TemporaryDirectory(prefix="bench-pipe-") as tmp:
        result = run(args.messages, args.concurrency, Path(tmp))
    latency = result["latency_s"]
    print(
        f"pipeline: {result['messages']} messages, accepted at {result['accepted_per_s']:.0f}/s, "
        f"stored at {result['stored_per_s']:.1f}/s end to end"
    )
    print(
        f"POST to stored: p50 {latency['p50']:.1f} s, p95 {latency['p95']:.1f} s, "
        f"p99 {latency['p99']:.1f} s; admissions notified {result['admissions_notified']}"
        f"/{result['admissions_sent']}; refusals {result['refusals']}"
    )
    print(f"baseline: Azurite takes {result['baseline_table_upserts_per_s']:.0f} table upserts/s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
