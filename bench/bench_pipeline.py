"""End-to-end throughput: HL7 v2 messages posted over HTTP to the local host, through every
stage (normalize, consent, store, notify, deliver) on Azurite, until each is stored and
each admission has reached a subscriber.

Seeded messages (``bench.generate`` ADT A01, ORU R01 and VXU V04 in turn, one patient
each) are posted ``--concurrency`` at a time, each with its own Idempotency-Key; one
subscription (admissions, id-only) delivers to a loopback receiver. Reported: messages/s
from the first acceptance to the last store, and the time from acceptance to stored
(p50/p95/p99, from the ingestion rows' server-side times). What bounds it, measured in
the same run: the CPU seconds Azurite and the host spent per message from the first POST
until every queue was empty (``bench.cpu``). Azurite is one Node.js event loop, so it
cannot serve more than one core's worth: one second over its CPU per message is the
Azurite-bound ceiling for this very op mix, and the share of it the pipeline reached is
Azurite's utilisation. The same for the host's one Python process, and for both sharing
the machine's cores. Azurite's rate for plain table upserts is reported as before.

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

from bench.cpu import tree_cpu_seconds
from bench.figures import machine_facts
from bench.generate import hl7_mixed_records
from bench.host import FUNCTION_KEY, product_host_process
from bench.storage import bench_storage


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def post_all(
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
    from shared import wiring
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


def run(
    messages: int,
    concurrency: int,
    work: Path,
    azurite: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Post, wait until stored and notified, and measure; ``azurite``: its pid;
    ``extra_env``: more app settings for the host (``bench_telemetry``: OTLP on)."""
    from intake_cli.receiver import webhook_receiver
    from shared import wiring
    from shared.pipeline.journey import TableIngestionLog
    from shared.platform.names import Setting, Table
    from shared.platform.provision import provision_storage
    from shared.security import Partner, Role, TablePartnerDirectory

    env = {
        Setting.STORAGE: os.environ[Setting.STORAGE],
        Setting.STORAGE_PREFIX: os.environ[Setting.STORAGE_PREFIX],
        "INTAKE_ENVIRONMENT": "development",
        "INTAKE_LOCAL_SECRETS_FILE": str(work / "secrets.json"),
        "INTAKE_SWEEP_SCHEDULE": "0 */5 * * * *",
        **(extra_env or {}),
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
    with product_host_process(env, work) as (base, host), webhook_receiver() as receiver:
        created = httpx.post(
            f"{base}/subscriptions",
            json={"topics": ["admission"], "endpoint": f"{receiver.url}/admissions"},
            headers={"x-functions-key": FUNCTION_KEY, "x-api-key": key},
        )
        created.raise_for_status()
        time.sleep(2.5)  # the notify stage re-reads subscriptions every 2 s
        cpu_before = tree_cpu_seconds(azurite), tree_cpu_seconds(host)
        started = time.monotonic()
        ids, refusals = asyncio.run(post_all(base, key, bodies, concurrency))
        posted = time.monotonic() - started
        # Polling must not load Azurite, which every stage shares: watch the queue depths
        # (one cheap call each), then read the ingestion rows once.
        deadline = time.monotonic() + max(600, messages)
        while time.monotonic() < deadline and not _drained(wiring.storage()):
            time.sleep(2)
        receiver.wait_for(admissions, timeout=max(300, messages / 10))
        cpu = _per_message(
            cpu_before, (tree_cpu_seconds(azurite), tree_cpu_seconds(host)), messages
        )
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
        **_ceilings(cpu, messages / span),
    }


def _per_message(
    before: tuple[float | None, float | None], after: tuple[float | None, float | None], n: int
) -> tuple[float | None, float | None]:
    """CPU seconds per message of Azurite and of the host (None where not measured)."""
    return tuple(  # type: ignore[return-value]
        (a - b) / n if a is not None and b is not None else None
        for a, b in zip(after, before, strict=True)
    )


def _ceilings(cpu: tuple[float | None, float | None], rate: float) -> dict[str, Any]:
    """What each bound allows, in messages/s, and the share of it ``rate`` reached."""
    azurite, host = cpu
    found: dict[str, Any] = {"azurite_cpu_ms_per_message": None, "host_cpu_ms_per_message": None}
    if azurite is None or host is None:
        return found
    both = (os.cpu_count() or 1) / (azurite + host)
    found.update(
        azurite_cpu_ms_per_message=azurite * 1000,
        host_cpu_ms_per_message=host * 1000,
        azurite_ceiling_per_s=1 / azurite,
        host_ceiling_per_s=1 / host,
        machine_ceiling_per_s=both,
        share_of_azurite_ceiling=rate * azurite,
        share_of_machine_ceiling=rate / both,
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with (
        bench_storage("pipeline") as azurite,
        tempfile.TemporaryDirectory(prefix="bench-pipe-") as tmp,
    ):
        result = run(args.messages, args.concurrency, Path(tmp), azurite)
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
    if result["azurite_cpu_ms_per_message"] is not None:
        print(
            f"CPU per message: Azurite {result['azurite_cpu_ms_per_message']:.1f} ms, host "
            f"{result['host_cpu_ms_per_message']:.1f} ms; ceilings: Azurite "
            f"{result['azurite_ceiling_per_s']:.1f}/s (reached "
            f"{result['share_of_azurite_ceiling']:.0%}), host {result['host_ceiling_per_s']:.1f}/s,"
            f" both on {os.cpu_count()} cores {result['machine_ceiling_per_s']:.1f}/s (reached "
            f"{result['share_of_machine_ceiling']:.0%})"
        )
    else:
        print("CPU per message: not measured (needs /proc and an Azurite this run started)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
