"""Storage requests and bytes per message, by function, counted through a proxy in front of
Azurite (``bench.ops_proxy``) while the product runs on the local host.

Three scenarios, each on the same host after a quiet spell, with one subscription
(admissions, id-only) delivering to a loopback receiver:
- one ADT A01 alone, until its webhook arrived and every stage queue is empty;
- one ORU R01 alone, the same way;
- ``--messages`` hl7-mixed messages (``bench.generate``: ADT A01, ORU R01, VXU V04 in
  turn), ``--concurrency`` at a time: the steady state.
Counted: every request from the first POST until the queues are empty. The empty
receives a listener makes while it waits are reported apart ("polls"): they depend on
time, not on messages (``maxPollingInterval``). The queue depths are watched with a
client of its own, past the proxy.

Usage: python -m bench.bench_ops [--messages N] [--concurrency N] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.bench_pipeline import post_all
from bench.figures import machine_facts
from bench.generate import hl7_mixed_records
from bench.host import FUNCTION_KEY, product_host
from bench.ops_proxy import CountingProxy, Request
from devhost.azurite import start_azurite_on_free_ports

REPO = Path(__file__).resolve().parents[1]
_STAGE_QUEUES = ("normalize", "consent-check", "store", "notify", "deliver")


def per_message(requests: list[Request], messages: int) -> dict[str, Any]:
    """Requests and bytes per message, by function and in all; polls apart."""
    polls = [r for r in requests if r.operation == "receive-empty"]
    work = [r for r in requests if r.operation != "receive-empty"]
    by_function: dict[str, dict[str, float]] = defaultdict(lambda: {"requests": 0, "bytes": 0})
    for r in work:
        entry = by_function[r.function]
        entry["requests"] += 1 / messages
        entry["bytes"] += (r.sent + r.received) / messages
    detail = Counter(f"{r.function} {r.service} {r.operation} {r.target}" for r in work)
    return {
        "messages": messages,
        "requests_per_message": len(work) / messages,
        "bytes_per_message": sum(r.sent + r.received for r in work) / messages,
        "polls_per_message": len(polls) / messages,
        "conflicts_per_message": sum(1 for r in work if r.status == 409) / messages,
        "by_function": dict(sorted(by_function.items())),
        "detail": {k: v / messages for k, v in detail.most_common()},
    }


def _drained(clients: Any, receiver: Any, expected: int) -> bool:
    from shared.platform.names import Queue

    return len(receiver.snapshot()) >= expected and all(
        clients.queue_client(Queue(q)).get_queue_properties().approximate_message_count == 0
        for q in _STAGE_QUEUES
    )


def _wait(clients: Any, receiver: Any, expected: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if _drained(clients, receiver, expected):
            return
        time.sleep(0.25)
    raise RuntimeError("the pipeline did not drain in time")


@contextmanager
def _stack(work: Path) -> Iterator[tuple[CountingProxy, dict[str, str], Any]]:
    """Azurite of its own, the proxy in front, and the settings that point there."""
    from shared.platform.settings import Settings, development_connection_string
    from shared.platform.storage import build_storage_clients

    prefix = "o" + secrets.token_hex(4)
    azurite = start_azurite_on_free_ports(REPO, work / "azurite", log_file=work / "az.log")
    try:
        with CountingProxy(azurite.ports, prefix) as proxy:
            env = {
                "AzureWebJobsStorage": development_connection_string(blob_port=proxy.ports[0]),
                "INTAKE_STORAGE_PREFIX": prefix,
                "INTAKE_ENVIRONMENT": "development",
                "INTAKE_LOCAL_SECRETS_FILE": str(work / "secrets.json"),
                "INTAKE_SWEEP_SCHEDULE": "0 0 0 1 1 *",  # no sweep inside a count
            }
            direct = build_storage_clients(
                Settings(  # type: ignore[call-arg]
                    AzureWebJobsStorage=development_connection_string(blob_port=azurite.ports[0]),
                    INTAKE_STORAGE_PREFIX=prefix,
                )
            )
            yield proxy, env, direct
    finally:
        azurite.stop()


def run(messages: int, concurrency: int, work: Path) -> dict[str, Any]:
    from intake_cli.receiver import webhook_receiver
    from shared import wiring
    from shared.platform.names import Table
    from shared.platform.provision import provision_storage
    from shared.security import Partner, Role, TablePartnerDirectory

    with _stack(work) as (proxy, env, direct):
        os.environ.update(env)
        wiring.reset_caches()
        provision_storage(direct)
        directory = TablePartnerDirectory(direct.table_client(Table.PARTNERS))
        directory.upsert(Partner(id="ops", name="Ops", roles=frozenset({Role.INGEST, Role.READ})))
        key = directory.issue_key("ops").token
        mixed = hl7_mixed_records(23)
        adt, oru = next(mixed), next(mixed)
        bodies = list(itertools.islice(mixed, messages))
        admissions = sum(1 for b in bodies if b"|ADT^A01" in b)
        with product_host(env, work) as base, webhook_receiver() as receiver:
            created = httpx.post(
                f"{base}/subscriptions",
                json={"topics": ["admission"], "endpoint": f"{receiver.url}/admissions"},
                headers={"x-functions-key": FUNCTION_KEY, "x-api-key": key},
            )
            created.raise_for_status()
            results: dict[str, Any] = {**machine_facts()}
            expected = 0
            for name, batch, admitted, parallel in (
                ("adt_a01_alone", [adt], 1, 1),
                ("oru_r01_alone", [oru], 0, 1),
                ("hl7_mixed", bodies, admissions, concurrency),
            ):
                time.sleep(3)  # past the subscription cache and any back-off
                proxy.take()
                expected += admitted
                started = time.monotonic()
                asyncio.run(post_all(base, key, batch, parallel, prefix=name))
                _wait(direct, receiver, expected, max(120.0, len(batch)))
                elapsed = time.monotonic() - started
                results[name] = {**per_message(proxy.take(), len(batch)), "seconds": elapsed}
        return results


def _print(results: dict[str, Any]) -> None:
    for name in ("adt_a01_alone", "oru_r01_alone", "hl7_mixed"):
        r = results[name]
        print(
            f"{name}: {r['requests_per_message']:.1f} requests and "
            f"{r['bytes_per_message'] / 1024:.1f} KiB per message "
            f"(+{r['polls_per_message']:.1f} empty polls, "
            f"{r['conflicts_per_message']:.2f} conflicts), {r['messages']} in {r['seconds']:.1f} s"
        )
        print("  " + ", ".join(f"{f} {v['requests']:.1f}" for f, v in r["by_function"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ops-") as tmp:
        try:
            results = run(args.messages, args.concurrency, Path(tmp))
        except RuntimeError:
            log = Path(tmp) / "host.log"
            if log.exists():
                print("".join(log.read_text(errors="replace").splitlines(True)[-40:]))
            raise
    _print(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
