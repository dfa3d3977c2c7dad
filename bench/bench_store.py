"""Store-stage throughput on Azurite: a Bundle's resources written 4 at a time (ours)
against one at a time, in the same run.

Each round stores a fresh seeded batch (``bench.generate`` NDJSON, normalized: Patients,
Observations and the Provenance) through ``StoreStage.handle``: version claim, version
blob, compartment and identifier rows, and the ``resources.changed`` messages. Rounds
alternate between the two; the best and median rounds are reported.

Usage: python -m bench.bench_store [--records N] [--rounds N] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

from bench.figures import against_baseline, report
from bench.storage import bench_storage

REPO = Path(__file__).resolve().parents[1]


def run(records: int, rounds: int) -> dict[str, Any]:
    """Measure both settings on Azurite; returns the figures."""
    from bench.generate import ndjson_records
    from shared import wiring
    from shared.normalize import json_codec
    from shared.normalize.context import ConversionContext
    from shared.normalize.fhir_json import convert_fhir_json
    from shared.pipeline.journey import TableIngestionLog
    from shared.platform.adapters import BlobPayloadStore, QueueEnvelopeSender
    from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
    from shared.platform.names import Container, Table
    from shared.platform.provision import provision_storage
    from shared.records.stage import StoreStage

    wiring.reset_caches()
    clients = wiring.storage()
    provision_storage(clients)
    stages = {
        label: StoreStage(
            BlobPayloadStore(clients),
            QueueEnvelopeSender(clients),
            TableIngestionLog(clients.table_client(Table.INGESTIONS)),
            wiring.record_store(),
            wiring.people(),
            concurrency=concurrency,
        )
        for label, concurrency in (("ours", 4), ("sequential", 1))
    }
    times: dict[str, list[float]] = {label: [] for label in stages}
    resources = 0
    seed = 100
    for _ in range(rounds):
        for label, stage in stages.items():
            seed += 1  # new data every round: every write creates
            data = b"".join(itertools.islice(ndjson_records(seed), records))
            bundle = convert_fhir_json(data, ConversionContext(partner=f"b{seed}")).bundle
            resources = len(bundle["entry"])
            name = f"bench/{seed}.permitted.json"
            clients.container(Container.NORMALIZED).upload_blob(
                name, json_codec.dumps(bundle).encode(), overwrite=True
            )
            envelope = Envelope(
                correlation_id=f"bench-{seed}",
                partner="bench",
                kind=EnvelopeKind.BUNDLE_PERMITTED,
                blob=BlobRef(container="normalized", name=name),
            )
            started = time.perf_counter()
            outcome = stage.handle(envelope)
            times[label].append(time.perf_counter() - started)
            assert outcome.counts["created"] + outcome.counts["updated"] == resources, outcome
    return against_baseline(
        times, resources, "resources", resources_per_bundle=resources, rounds=rounds
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with bench_storage("store"):
        result = run(args.records, args.rounds)
    report(result, "resources", args.json)


if __name__ == "__main__":
    main()
