"""What telemetry costs the pipeline: ``bench_pipeline`` with OpenTelemetry off and with
OTLP/HTTP export to a collector stand-in on loopback (the one the tests use,
``tests/support/otlp_collector.py``), alternating in one run, each on fresh storage.

Reported per mode: messages/s stored end to end, POST-to-stored p50/p95, and the host's
and Azurite's CPU milliseconds per message (``bench.cpu``); for OTLP also what reached the
collector (spans, metric and log requests). Needs the dev extras (opentelemetry-proto).

Usage: python -m bench.bench_telemetry [--messages N] [--rounds N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench import bench_pipeline
from bench.figures import machine_facts
from bench.storage import bench_storage
from tests.support.otlp_collector import otlp_collector


def run(messages: int, concurrency: int, rounds: int) -> dict[str, Any]:
    """``rounds`` of (off, otlp), each on a fresh storage prefix."""
    results: dict[str, list[dict[str, Any]]] = {"off": [], "otlp": []}
    exported: list[dict[str, int]] = []
    with bench_storage("telemetry") as azurite, otlp_collector() as collector:
        for _ in range(rounds):
            for mode in ("off", "otlp"):
                os.environ["INTAKE_STORAGE_PREFIX"] = "t" + secrets.token_hex(5)
                extra = (
                    {
                        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
                        "OTEL_METRIC_EXPORT_INTERVAL": "5000",
                    }
                    if mode == "otlp"
                    else {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}
                )
                before = len(collector.spans())
                with tempfile.TemporaryDirectory(prefix=f"bench-otel-{mode}-") as tmp:
                    result = bench_pipeline.run(messages, concurrency, Path(tmp), azurite, extra)
                results[mode].append(result)
                if mode == "otlp":
                    exported.append(
                        {
                            "spans": len(collector.spans()) - before,
                            "metric_requests": len(collector.metrics),
                            "log_requests": len(collector.logs),
                        }
                    )
    return {
        **machine_facts(),
        "messages": messages,
        "concurrency": concurrency,
        "rounds": rounds,
        "modes": {mode: _summary(runs) for mode, runs in results.items()},
        "exported": exported,
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(pick: Any) -> float | None:
        values = [v for r in runs if (v := pick(r)) is not None]
        return statistics.median(values) if values else None

    return {
        "stored_per_s": median(lambda r: r["stored_per_s"]),
        "latency_p50_s": median(lambda r: r["latency_s"]["p50"]),
        "latency_p95_s": median(lambda r: r["latency_s"]["p95"]),
        "host_cpu_ms_per_message": median(lambda r: r["host_cpu_ms_per_message"]),
        "azurite_cpu_ms_per_message": median(lambda r: r["azurite_cpu_ms_per_message"]),
        "runs": [
            {k: r[k] for k in ("stored_per_s", "latency_s", "host_cpu_ms_per_message")}
            for r in runs
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.messages, args.concurrency, args.rounds)
    for mode, found in result["modes"].items():
        cpu = found["host_cpu_ms_per_message"]
        print(
            f"telemetry {mode}: stored {found['stored_per_s']:.1f}/s, POST to stored p50 "
            f"{found['latency_p50_s']:.2f} s, p95 {found['latency_p95_s']:.2f} s, host CPU "
            + (f"{cpu:.1f} ms/message" if cpu is not None else "not measured")
        )
    print(f"exported per OTLP round: {result['exported']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
