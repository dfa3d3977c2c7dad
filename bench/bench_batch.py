"""Batch drops: records/s and peak memory for one large NDJSON file.

Generates a seeded NDJSON file of SIZE MB, uploads it to ingest-drop on Azurite (started
here when none runs), then runs the drop stage in a child process and reports its
wall time, records/s, MB/s and peak RSS. The baseline, in the same run and on the same
blob, is the naive approach (download the whole blob, then split) measured the same
way. Only the batch stage is timed: normalization is benchmarked on its own.

Usage: python -m bench.bench_batch [--size-mb 1024] [--baseline-mb 256] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.generate import write
from devhost.azurite import DEFAULT_PORTS, ports_listening, start_azurite
from shared.platform.settings import development_connection_string

REPO = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, resource, sys, time
from shared import wiring
from shared.intake.drops import DropEvent
mode, name = sys.argv[1], sys.argv[2]
clients = wiring.storage()
from shared.platform.names import Container
drop = clients.container(Container.INGEST_DROP)
started = time.perf_counter()
if mode == "ours":
    etag = drop.get_blob_client(name).get_blob_properties().etag.strip('"')
    report = wiring.drop_processor().process(DropEvent(drop.container_name, name, etag))
    records = report.records
else:
    data = drop.download_blob(name).readall()
    records = sum(1 for line in data.split(b"\n") if line.strip())
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "records": records,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(mode: str, name: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, name],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=1024)
    parser.add_argument(
        "--baseline-mb",
        type=float,
        default=256,
        help="size for the naive baseline (it holds the whole file in memory)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    azurite = None
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    if not ports_listening("127.0.0.1", DEFAULT_PORTS):
        azurite = start_azurite(REPO, work / "azurite", log_file=work / "azurite.log")
    try:
        env = {
            **os.environ,
            "AzureWebJobsStorage": development_connection_string(),
            "INTAKE_STORAGE_PREFIX": "b" + secrets.token_hex(5),
            "INTAKE_DIRECT_DROP_PARTNERS": "bench",  # the file is uploaded with the SDK
        }
        os.environ.update(env)
        from shared import wiring
        from shared.platform.names import Container, Table
        from shared.platform.provision import provision_storage
        from shared.security import Partner, TablePartnerDirectory

        wiring.reset_caches()
        clients = wiring.storage()
        provision_storage(clients)
        TablePartnerDirectory(clients.table_client(Table.PARTNERS)).upsert(
            Partner(id="bench", name="Bench")
        )
        results: dict[str, object] = {
            "machine": f"{os.cpu_count()} cores",
            "python": sys.version.split()[0],
        }
        for label, size in (("ours", args.size_mb), ("baseline", args.baseline_mb)):
            path = work / f"{label}.ndjson"
            records = write("ndjson", int(size * 1024 * 1024), path)
            name = f"bench/{label}.ndjson"
            with path.open("rb") as data:
                clients.container(Container.INGEST_DROP).upload_blob(
                    name, data, overwrite=True, max_concurrency=4
                )
            path.unlink()
            measured = _child("ours" if label == "ours" else "naive", name, env)
            assert measured["records"] == records, (measured, records)
            measured.update(
                size_mb=size,
                records_per_s=records / measured["seconds"],
                mb_per_s=size / measured["seconds"],
            )
            results[label] = measured
            print(
                f"{label:8}: {size:7.0f} MB, {records:9d} records in {measured['seconds']:7.1f} s "
                f"= {measured['records_per_s']:8.0f} records/s, {measured['mb_per_s']:6.1f} MB/s, "
                f"peak RSS {measured['peak_rss_mb']:6.0f} MB"
            )
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        if azurite is not None:
            azurite.stop()


if __name__ == "__main__":
    main()
