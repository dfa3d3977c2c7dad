"""Consent-check throughput on Azurite: our stage against a naive one, in the same run.

A seeded batch (Patients and Observations from ``bench.generate``, normalized) goes
through ``ConsentStage.handle`` with the real index and audit log on Azurite (what it
permits is counted, not stored); one patient in twenty has an opt-out Consent on
file. Ours looks the batch's patients up concurrently
(``TableConsentIndex(concurrency=8)``) and writes the batch's patient-specific
AuditEvents as one NDJSON blob. The naive stage, otherwise the same code, looks
patients up one at a time and writes one blob per AuditEvent. Rounds alternate; the
best and the median round of each are reported. A separate loop times
the pure engine on the 12 official R4 Consent examples (no I/O).

Usage: python -m bench.bench_consent [--records N] [--rounds N] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.figures import machine_facts
from bench.storage import bench_storage

REPO = Path(__file__).resolve().parents[1]


class _OneBlobPerEvent:
    """The naive audit log: every AuditEvent its own write."""

    def __init__(self, log: Any) -> None:
        self._log = log

    def write(self, event: dict[str, Any]) -> str:
        return str(self._log.write(event))

    def write_batch(self, events: Sequence[dict[str, Any]], work_id: str) -> str | None:
        for event in events:
            self._log.write(event)
        return None


class _Kept:
    """Takes what consent permits and keeps only the count: storing it is
    ``bench-store``'s measurement, not this one's."""

    def __init__(self) -> None:
        self.bundles = 0

    def accept(
        self, envelope: Any, bundle: Any, normalized: str, quarantine: str, before: Any = None
    ) -> None:
        self.bundles += 1

    def hand_over(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("accept never fails here")


def _engine(rounds: int) -> dict[str, Any]:
    from shared.consent import Action, Actor, Code, ConsentRequest, DataItem, Policy, decide_consent

    examples = REPO / "node_modules" / "hl7.fhir.r4.examples"
    consents = [json.loads(p.read_text()) for p in sorted(examples.glob("Consent-*.json"))]
    request = ConsentRequest(
        Action.ACCESS,
        datetime(2016, 6, 1, tzinfo=UTC),
        Code(None, "TREAT"),
        Actor(frozenset({"Organization/f001"})),
        DataItem(resource_type="Observation", reference="Observation/o1"),
    )
    n = 2000
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            decide_consent(consents, request, Policy())
        times.append(time.perf_counter() - started)
    return {
        "consents_per_decision": len(consents),
        "decisions_per_s_best": n / min(times),
        "decisions_per_s_median": n / statistics.median(times),
    }


def run(records: int, rounds: int) -> dict[str, Any]:
    """Measure both stages on Azurite; returns the figures."""
    from bench.generate import ndjson_records
    from shared import wiring
    from shared.consent.adapters import TableConsentIndex
    from shared.consent.models import Code
    from shared.consent.stage import ConsentStage
    from shared.consent.vocabulary import ACT_REASON
    from shared.normalize import json_codec
    from shared.normalize.context import ConversionContext
    from shared.normalize.fhir_json import convert_fhir_json
    from shared.pipeline.journey import TableIngestionLog
    from shared.platform.adapters import BlobAuditLog, BlobPayloadStore
    from shared.platform.envelope import BlobRef, Envelope, EnvelopeKind
    from shared.platform.names import Container, Table
    from shared.platform.provision import provision_storage
    from shared.security import Partner, TablePartnerDirectory

    wiring.reset_caches()
    clients = wiring.storage()
    provision_storage(clients)
    partners = TablePartnerDirectory(clients.table_client(Table.PARTNERS))
    partners.upsert(Partner(id="bench", name="Bench"))
    data = b"".join(itertools.islice(ndjson_records(11), records))
    bundle = convert_fhir_json(data, ConversionContext(partner="bench")).bundle
    clients.container(Container.NORMALIZED).upload_blob(
        "bench/batch.json", json_codec.dumps(bundle).encode(), overwrite=True
    )
    patients = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    ]

    def index(concurrency: int) -> TableConsentIndex:
        return TableConsentIndex(
            clients.table_client(Table.CONSENT_INDEX),
            clients.container(Container.CONSENTS),
            concurrency=concurrency,
        )

    for number, patient in enumerate(patients[::20]):
        index(1).put(
            {
                "resourceType": "Consent",
                "id": f"bench-{number}",
                "status": "active",
                "scope": {"coding": [{"code": "patient-privacy"}]},
                "dateTime": "2026-01-01",
                "policyRule": {"coding": [{"code": "OPTOUT"}]},
                "patient": {"reference": f"Patient/{patient['id']}"},
            },
            {f"Patient/{patient['id']}"},
        )

    def stage(naive: bool) -> ConsentStage:
        audit = BlobAuditLog(clients)
        return ConsentStage(
            BlobPayloadStore(clients),
            TableIngestionLog(clients.table_client(Table.INGESTIONS)),
            index(1 if naive else 8),
            partners,
            _OneBlobPerEvent(audit) if naive else audit,
            wiring.record_store(),  # notes held-back patients' ingestions, for erasure
            wiring.consent_policy(),
            Code(ACT_REASON, "TREAT"),
            wiring.people(),
            lambda partner, system, value: [],
            _Kept(),  # what is permitted is not stored here: bench-store times that
        )

    stages = {"ours": stage(False), "naive": stage(True)}
    times: dict[str, list[float]] = {"ours": [], "naive": []}
    outcome = None
    for round_number in range(rounds):
        for label, chosen in stages.items():
            envelope = Envelope(
                correlation_id=f"{label}-{round_number}",
                partner="bench",
                kind=EnvelopeKind.BUNDLE_NORMALIZED,
                blob=BlobRef(container="normalized", name="bench/batch.json"),
            )
            started = time.perf_counter()
            outcome = chosen.handle(envelope)
            times[label].append(time.perf_counter() - started)
    assert outcome is not None and outcome.denied == 2 * len(patients[::20]), outcome
    result: dict[str, Any] = {
        **machine_facts(),
        "records": records,
        "patients": len(patients),
        "opted_out": len(patients[::20]),
        "rounds": rounds,
    }
    for label, measured in times.items():
        result[label] = {
            "records_per_s_best": records / min(measured),
            "records_per_s_median": records / statistics.median(measured),
        }
    result["speedup_median"] = (
        result["ours"]["records_per_s_median"] / result["naive"]["records_per_s_median"]
    )
    result["engine"] = _engine(rounds)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with bench_storage("consent"):
        result = run(args.records, args.rounds)
    for label in ("ours", "naive"):
        figures = result[label]
        print(
            f"{label:6}: {figures['records_per_s_best']:7.0f} records/s best, "
            f"{figures['records_per_s_median']:7.0f} median"
        )
    print(f"speedup (median): {result['speedup_median']:.1f}x")
    engine = result["engine"]
    print(
        f"engine: {engine['decisions_per_s_best']:.0f} decisions/s best "
        f"({engine['consents_per_decision']} consents per decision)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
