"""Notification throughput on Azurite: the notify stage matching stored changes against
subscriptions read every 2 s (ours) against re-read for every change, in the same run;
then the deliver stage POSTing signed notifications to a loopback receiver.

Each round stores a fresh seeded batch (``bench.generate`` NDJSON: Patients and heart
rates) through the store stage, keeps the ``resources.changed`` envelopes it announces,
and times ``NotifyStage.handle`` over them with five subscriptions (every Observation,
a heart rate over 120, Patients, admissions, one CloudEvents subscriber). The deliveries
queued in the last round are then attempted one after another by ``DeliveryStage``.

Usage: python -m bench.bench_notify [--records N] [--rounds N] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.figures import machine_facts
from bench.storage import bench_storage

REPO = Path(__file__).resolve().parents[1]


class _Capture:
    """An envelope sender that keeps what it is given (the next stage runs it here)."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, queue: Any, envelope: Any, delay: int = 0) -> None:
        self.sent.append(envelope)


def run(records: int, rounds: int, receiver_url: str) -> dict[str, Any]:
    """Measure on Azurite; returns the figures."""
    from bench.generate import ndjson_records
    from shared import wiring
    from shared.normalize import json_codec
    from shared.normalize.context import ConversionContext
    from shared.normalize.fhir_json import convert_fhir_json
    from shared.notify import SubscriptionChange
    from shared.notify.delivery import DeliveryStage
    from shared.notify.stage import NotifyStage
    from shared.pipeline.journey import TableIngestionLog
    from shared.platform.adapters import BlobPayloadStore
    from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
    from shared.platform.names import Container, Table
    from shared.platform.provision import provision_storage
    from shared.records.stage import StoreStage
    from shared.security import Partner, Role

    wiring.reset_caches()
    clients = wiring.storage()
    provision_storage(clients)
    owner = Partner(id="bench", name="Bench", roles=frozenset({Role.READ}))
    wiring.partners().upsert(owner)
    service = wiring.subscription_service()
    for fields in (
        {"criteria": "Observation"},
        {"criteria": "Observation?code=http://loinc.org|8867-4&value-quantity=gt120"},
        {"criteria": "Patient"},
        {"topics": ["admission"]},
        {"criteria": "Observation?value-quantity=lt50", "format": "cloudevents"},
    ):
        change = SubscriptionChange.model_validate({**fields, "endpoint": receiver_url})
        service.create(owner, change, "http://127.0.0.1/api/fhir")
    status = TableIngestionLog(clients.table_client(Table.INGESTIONS))

    def notify_stage(cache_seconds: float, sender: _Capture) -> NotifyStage:
        return NotifyStage(
            BlobPayloadStore(clients),
            wiring.record_store(),
            wiring.subscription_store(),
            wiring.deliveries(),
            sender,
            status,
            wiring.people(),
            wiring.partners().get,
            cache_seconds=cache_seconds,
        )

    times: dict[str, list[float]] = {"ours": [], "per-change": []}
    seed, changes, queued = 300, 0, _Capture()
    for _ in range(rounds):
        for label, cache_seconds in (("ours", 2.0), ("per-change", 0.0)):
            seed += 1
            data = b"".join(itertools.islice(ndjson_records(seed), records))
            bundle = convert_fhir_json(data, ConversionContext(partner=f"n{seed}")).bundle
            name = f"bench/{seed}.permitted.json"
            clients.container(Container.NORMALIZED).upload_blob(
                name, json_codec.dumps(bundle).encode(), overwrite=True
            )
            announced = _Capture()
            StoreStage(
                BlobPayloadStore(clients), announced, status, wiring.record_store(), wiring.people()
            ).handle(
                Envelope(
                    correlation_id=f"bench-{seed}",
                    partner="bench",
                    kind=EnvelopeKind.BUNDLE_PERMITTED,
                    blob=BlobRef(container="normalized", name=name),
                )
            )
            changes = sum(len(e.changes or ()) or 1 for e in announced.sent)
            queued = _Capture()
            stage = notify_stage(cache_seconds, queued)
            started = time.perf_counter()
            for envelope in announced.sent:
                stage.handle(envelope)
            times[label].append(time.perf_counter() - started)
    delivery: DeliveryStage = wiring.delivery_stage()
    started = time.perf_counter()
    outcomes = [delivery.handle(envelope) for envelope in queued.sent]
    delivery_seconds = time.perf_counter() - started
    assert all(o is not None and o.value == "delivered" for o in outcomes), outcomes
    result: dict[str, Any] = {
        **machine_facts(),
        "changes_per_round": changes,
        "deliveries_per_round": len(queued.sent),
        "rounds": rounds,
        "deliveries_per_s_sequential": len(queued.sent) / delivery_seconds,
    }
    for label, measured in times.items():
        result[label] = {
            "changes_per_s_best": changes / min(measured),
            "changes_per_s_median": changes / statistics.median(measured),
        }
    result["speedup_median"] = (
        result["ours"]["changes_per_s_median"] / result["per-change"]["changes_per_s_median"]
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from intake_cli.receiver import webhook_receiver

    os.environ["INTAKE_ENVIRONMENT"] = "development"  # the receiver is on loopback http
    with bench_storage("notify"), webhook_receiver() as receiver:
        secrets_dir = tempfile.mkdtemp(prefix="bench-notify-")
        os.environ["INTAKE_LOCAL_SECRETS_FILE"] = str(Path(secrets_dir) / "secrets.json")
        result = run(args.records, args.rounds, f"{receiver.url}/hook")
    for label in ("ours", "per-change"):
        figures = result[label]
        print(
            f"notify {label:10}: {figures['changes_per_s_best']:6.0f} changes/s best, "
            f"{figures['changes_per_s_median']:6.0f} median"
        )
    print(f"speedup (median): {result['speedup_median']:.1f}x")
    print(
        f"deliver: {result['deliveries_per_round']} deliveries, "
        f"{result['deliveries_per_s_sequential']:.0f}/s one at a time"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
