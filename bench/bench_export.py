"""Bulk export throughput on Azurite: resource reads overlapped 8 at a time (ours) against
one at a time, in the same run, over the same stored record.

The record is seeded once (``bench.generate`` NDJSON through ``StoreStage``: Patients,
Observations and the Provenance); each round runs a whole system export job as one slice
(consent per patient resource, NDJSON and audit blobs written) with each setting in turn.
The best and median rounds are reported.

Usage: python -m bench.bench_export [--records N] [--rounds N] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.figures import against_baseline, report
from bench.storage import bench_storage


def _seed(records: int) -> int:
    """Store ``records`` generated records; returns how many resources were stored."""
    from bench.generate import ndjson_records
    from shared import wiring
    from shared.normalize import json_codec
    from shared.normalize.context import ConversionContext
    from shared.normalize.fhir_json import convert_fhir_json
    from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
    from shared.platform.names import Container

    data = b"".join(itertools.islice(ndjson_records(7), records))
    bundle = convert_fhir_json(data, ConversionContext(partner="bench")).bundle
    name = "bench/export-seed.permitted.json"
    wiring.storage().container(Container.NORMALIZED).upload_blob(
        name, json_codec.dumps(bundle).encode(), overwrite=True
    )
    envelope = Envelope(
        correlation_id="bench-export-seed",
        partner="bench",
        kind=EnvelopeKind.BUNDLE_PERMITTED,
        blob=BlobRef(container="normalized", name=name),
    )
    wiring.store_stage().handle(envelope)
    return len(bundle["entry"])


def run(records: int, rounds: int) -> dict[str, Any]:
    """Measure both settings on Azurite; returns the figures."""
    from shared import wiring
    from shared.platform.names import Container
    from shared.platform.provision import provision_storage
    from shared.records.adapters.export_files import ExportFiles
    from shared.records.export import READERS, Exporter
    from shared.records.models import ExportJob, ExportStatus

    wiring.reset_caches()
    clients = wiring.storage()
    provision_storage(clients)
    stored = _seed(records)
    files = ExportFiles(clients.container(Container.EXPORTS), clients.container(Container.AUDIT))
    exporters = {
        label: Exporter(
            wiring.record_store(),
            wiring._consent_index(),
            wiring.partners(),
            wiring.export_jobs(),
            files,
            wiring.consent_policy(),
            resume=lambda job: None,
            people=wiring.people(),
            readers=readers,
        )
        for label, readers in (("ours", READERS), ("sequential", 1))
    }
    times: dict[str, list[float]] = {label: [] for label in exporters}
    exported = 0
    for _ in range(rounds):
        for label, exporter in exporters.items():
            job = ExportJob(
                id=uuid.uuid4().hex,
                partner="bench",
                level="system",
                types=[],
                since=None,
                purpose="TREAT",
                request="bench",
                transaction_time=datetime.now(UTC).isoformat(),
                scope="population",
            )
            wiring.export_jobs().save(job)
            started = time.perf_counter()
            done = exporter.run("bench", job.id, budget=3600)
            times[label].append(time.perf_counter() - started)
            assert done is not None and done.status is ExportStatus.COMPLETED, done
            exported = sum(o["count"] for o in done.outputs)
            assert exported == stored, (exported, stored)
    return against_baseline(
        times, exported, "resources", resources_exported=exported, rounds=rounds
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with bench_storage("export"):
        result = run(args.records, args.rounds)
    report(result, "resources", args.json)


if __name__ == "__main__":
    main()
