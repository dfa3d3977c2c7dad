"""Idle latency: one ADT A01 at a time through the whole pipeline on the local host, from
the POST to its version in the record and to its admission webhook.

``--messages`` A01s (default 20, one new patient each) are posted one after another, each
after the previous one's webhook arrived and a pause (``--pause``, 1 s), with one
subscription (admissions, id-only) delivering to a loopback receiver. Reported, median
and worst: POST to stored (the ingestion row's server-side ``received_at`` to
``store_at``) and POST to webhook (the client's clock, before the POST to the receiver's
receipt).

Usage: python -m bench.bench_latency [--messages N] [--pause S] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.figures import machine_facts
from bench.generate import hl7_mixed_records
from bench.host import FUNCTION_KEY, product_host
from devhost.azurite import start_azurite_on_free_ports

REPO = Path(__file__).resolve().parents[1]


def run(messages: int, pause: float, work: Path) -> dict[str, Any]:
    from intake_cli.receiver import webhook_receiver
    from shared import wiring
    from shared.platform.names import Table
    from shared.platform.provision import provision_storage
    from shared.platform.settings import development_connection_string
    from shared.security import Partner, Role, TablePartnerDirectory

    azurite = start_azurite_on_free_ports(REPO, work / "azurite", log_file=work / "az.log")
    try:
        env = {
            "AzureWebJobsStorage": development_connection_string(blob_port=azurite.ports[0]),
            "INTAKE_STORAGE_PREFIX": "l" + secrets.token_hex(4),
            "INTAKE_ENVIRONMENT": "development",
            "INTAKE_LOCAL_SECRETS_FILE": str(work / "secrets.json"),
            "INTAKE_SWEEP_SCHEDULE": "0 0 0 1 1 *",
        }
        os.environ.update(env)
        wiring.reset_caches()
        provision_storage(wiring.storage())
        directory = TablePartnerDirectory(wiring.storage().table_client(Table.PARTNERS))
        directory.upsert(Partner(id="lat", name="Lat", roles=frozenset({Role.INGEST, Role.READ})))
        key = directory.issue_key("lat").token
        log = wiring.ingestion_log()
        admissions = (b for b in hl7_mixed_records(31) if b"|ADT^A01" in b)  # endless
        bodies = list(itertools.islice(admissions, messages))
        headers = {"x-functions-key": FUNCTION_KEY, "x-api-key": key}
        to_stored: list[float] = []
        to_webhook: list[float] = []
        with product_host(env, work) as base, webhook_receiver() as receiver:
            httpx.post(
                f"{base}/subscriptions",
                json={"topics": ["admission"], "endpoint": f"{receiver.url}/admissions"},
                headers=headers,
            ).raise_for_status()
            time.sleep(3)  # past the notify stage's subscription cache
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                for n, body in enumerate(bodies):
                    time.sleep(pause)
                    sent = time.monotonic()
                    answer = client.post(
                        "/ingest",
                        content=body,
                        headers={"content-type": "x-application/hl7-v2+er7"},
                    )
                    answer.raise_for_status()
                    arrived = receiver.wait_for(n + 1, timeout=60)[n].at
                    to_webhook.append(arrived - sent)
                    row = log.get("lat", answer.json()["id"]) or {}
                    deadline = time.monotonic() + 30
                    while "store_at" not in row and time.monotonic() < deadline:
                        time.sleep(0.05)
                        row = log.get("lat", answer.json()["id"]) or {}
                    to_stored.append((row["store_at"] - row["received_at"]).total_seconds())
    finally:
        azurite.stop()
    return {
        **machine_facts(),
        "messages": messages,
        "post_to_stored_s": {"median": statistics.median(to_stored), "max": max(to_stored)},
        "post_to_webhook_s": {"median": statistics.median(to_webhook), "max": max(to_webhook)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--pause", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lat-") as tmp:
        result = run(args.messages, args.pause, Path(tmp))
    stored, webhook = result["post_to_stored_s"], result["post_to_webhook_s"]
    print(
        f"idle latency over {result['messages']} ADT A01: POST to stored median "
        f"{stored['median']:.2f} s (worst {stored['max']:.2f}), POST to webhook median "
        f"{webhook['median']:.2f} s (worst {webhook['max']:.2f})"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
