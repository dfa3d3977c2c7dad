"""HTTP ingest under load: autocannon (the npm load generator, from node_modules) posting
HL7 v2 messages to ``POST /api/ingest`` on the local host with 50 connections, then a check
that every 2xx it counted has its ingestion on record (nothing accepted was lost).

Every request carries a different message (autocannon's ``[<id>]`` replacement in MSH-10
and PID-3), so none is a duplicate. The later stages are switched off
(``AzureWebJobs.<fn>.Disabled``) so the figure is the ingest endpoint's own: the accepted
messages wait in the ``normalize`` queue. Baseline in the same run, same host and
connections: ``GET /api/openapi.json``, which touches no storage (the host's own HTTP
ceiling).

Usage: python -m bench.bench_http [--requests N] [--connections N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.figures import machine_facts
from bench.host import FUNCTION_KEY, REPO, intake_only_with_partner, product_host
from bench.storage import bench_storage

AUTOCANNON = REPO / "node_modules" / ".bin" / "autocannon"
MESSAGE = (
    "MSH|^~\\&|LOAD|LOADHOSP|INTAKE|INTAKE|20260301101500||ADT^A01^ADT_A01|[<id>]|P|2.5.1\r"
    "EVN|A01|20260301101500\r"
    "PID|1||[<id>]^^^&2.16.840.1.113883.19.5&ISO^MR||Load^Test||19700101|F\r"
    "PV1|1|I|WARD-1^1^A^LOADHOSP|||||||MED\r"
)
DOWNSTREAM = ("normalize", "consent_check", "store", "notify", "deliver", "process_drop")


def _autocannon(url: str, connections: int, requests: int, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(AUTOCANNON), "--json", "-c", str(connections), "-a", str(requests), *extra, url],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    latency = report["latency"]
    return {
        "requests_per_s": report["requests"]["average"],
        "latency_ms": {k: latency[k] for k in ("p50", "p90", "p99", "max")},
        "2xx": report["2xx"],
        "non_2xx": report["non2xx"],
        "errors": report["errors"],
        "timeouts": report["timeouts"],
    }


def run(requests: int, connections: int, work: Path) -> dict[str, Any]:
    from shared import wiring
    from shared.platform.names import Table

    env, key = intake_only_with_partner(DOWNSTREAM, "load")
    with product_host(env, work) as base:
        _autocannon(f"{base}/openapi.json", connections, 200)  # warm up
        baseline = _autocannon(f"{base}/openapi.json", connections, requests)
        ingest = _autocannon(
            f"{base}/ingest",
            connections,
            requests,
            "-m",
            "POST",
            "-I",
            "-H",
            f"x-functions-key={FUNCTION_KEY}",
            "-H",
            f"x-api-key={key}",
            "-H",
            "content-type=x-application/hl7-v2+er7",
            "-b",
            MESSAGE,
        )
        time.sleep(1)
    table = wiring.storage().table_client(Table.INGESTIONS)
    on_record = sum(
        1
        for row in table.query_entities("PartitionKey eq 'load'", select=["received_status"])
        if row.get("received_status") == "stored"
    )
    return {
        **machine_facts(),
        "connections": connections,
        "requests": requests,
        "ingest": _figures(ingest),
        "baseline_openapi": _figures(baseline),
        "ingestions_on_record": on_record,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with bench_storage("http"), tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        result = run(args.requests, args.connections, Path(tmp))
    for label in ("ingest", "baseline_openapi"):
        f = result[label]
        lat = f["latency_ms"]
        print(
            f"{label:16}: {f['requests_per_s']:7.1f} req/s, p50 {lat['p50']} ms, "
            f"p90 {lat['p90']} ms, p99 {lat['p99']} ms; 2xx {f['2xx']}, "
            f"non-2xx {f['non_2xx']}, errors {f['errors']}, timeouts {f['timeouts']}"
        )
    lost = result["ingest"]["2xx"] - result["ingestions_on_record"]
    accepted, on_record = result["ingest"]["2xx"], result["ingestions_on_record"]
    print(f"accepted {accepted}, on record {on_record}, lost {max(lost, 0)}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if lost > 0 or result["ingest"]["errors"] or result["ingest"]["non_2xx"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
