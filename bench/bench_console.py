"""How long the console's pages take to find things on Azurite, by the kind of search.

Seeds ``--rows`` journey rows across 8 partners over the last two days (seeded, one row
per ingestion as the stages write them: MSH-10, times, statuses, counts), then times each
search the console runs, median of ``--rounds``, through the services the pages call. The
baseline in the same run is the cheapest search, one partner's last day (a partition
range): the others are what an operator adds to it (a message id across every partner
scans the whole table; a patient identifier goes by key).

Usage: python -m bench.bench_console [--rows N] [--rounds N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.figures import machine_facts
from bench.storage import bench_storage

PARTNERS = [f"partner-{n}" for n in range(8)]
_OUTCOMES = (("stored", "normalized"), ("stored", "partial"), (None, "rejected"), (None, "failed"))


def _seed(rows: int, now: datetime) -> tuple[str, str, str]:
    """Write the rows, a batch per partition at a time; (a partner, a message id, its
    ingestion) to look for."""
    from shared import wiring
    from shared.platform.names import Table
    from shared.platform.provision import provision_storage

    provision_storage(wiring.storage())
    table = wiring.storage().table_client(Table.INGESTIONS)
    rng = random.Random(22)
    batches: dict[str, list[tuple[str, dict[str, Any]]]] = {p: [] for p in PARTNERS}
    wanted = ("", "", "")
    for n in range(rows):
        partner = PARTNERS[n % len(PARTNERS)]
        store, normalize = _OUTCOMES[rng.randrange(len(_OUTCOMES))]
        ingestion = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        row: dict[str, Any] = {
            "PartitionKey": partner,
            "RowKey": ingestion,
            "received_status": "stored",
            "received_at": now - timedelta(seconds=rng.randrange(2 * 86_400)),
            "received_channel": "http",
            "received_message_id": f"MSG-{n:07d}",
            "received_message_type": "ADT",
            "normalize_status": normalize,
            "normalize_resources": 5,
        }
        if store:
            row.update({"store_status": store, "store_created": 5, "store_updated": 0})
        batches[partner].append(("upsert", row))
        if n == rows // 2:
            wanted = (partner, f"MSG-{n:07d}", ingestion)
        if len(batches[partner]) == 100:  # an entity-group transaction's most
            table.submit_transaction(batches[partner])
            batches[partner] = []
    for batch in batches.values():
        if batch:
            table.submit_transaction(batch)
    return wanted


def run(rows: int, rounds: int) -> dict[str, Any]:
    """Seed, then time each search; returns the figures."""
    from shared import wiring
    from shared.console import IngestionFilter, IngestionStatus, Viewer
    from shared.security.models import Role

    wiring.reset_caches()
    now = datetime.now(UTC)
    started = time.perf_counter()
    partner, message, ingestion = _seed(rows, now)
    seeded = time.perf_counter() - started
    operator = Viewer("ops", frozenset({Role.ADMIN}))
    search, figures = wiring.console_search(), wiring.console_figures()
    day = now - timedelta(days=1)
    cases: dict[str, Callable[[], Any]] = {
        "one partner, last day (baseline)": lambda: search.search(
            operator, IngestionFilter(partner=partner, since=day)
        ),
        "one partner, failed, last day": lambda: search.search(
            operator, IngestionFilter(partner=partner, since=day, status=IngestionStatus.FAILED)
        ),
        "message id, one partner": lambda: search.search(
            operator, IngestionFilter(partner=partner, message_id=message)
        ),
        "message id, every partner": lambda: search.search(
            operator, IngestionFilter(message_id=message)
        ),
        "every partner, last day": lambda: search.search(operator, IngestionFilter(since=day)),
        "figures (hour and day)": lambda: figures.windows(operator),
    }
    results: dict[str, Any] = {}
    for label, case in cases.items():
        times, found = [], None
        for _ in range(rounds):
            began = time.perf_counter()
            found = case()
            times.append(time.perf_counter() - began)
        matched = getattr(found, "matched", None)
        results[label] = {"ms_median": statistics.median(times) * 1000, "matched": matched}
    hit = search.search(operator, IngestionFilter(message_id=message))
    assert [i.id for i in hit.items] == [ingestion], "the seeded message was not found"
    baseline = results["one partner, last day (baseline)"]["ms_median"]
    for figures_of in results.values():
        figures_of["vs_baseline"] = figures_of["ms_median"] / baseline
    return {**machine_facts(), "rows": rows, "rounds": rounds, "seed_s": seeded, **results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with bench_storage("console"):
        result = run(args.rows, args.rounds)
    for label, value in result.items():
        if isinstance(value, dict) and "ms_median" in value:
            print(
                f"{label:34} {value['ms_median']:8.0f} ms median  "
                f"{value['vs_baseline']:5.1f}x  matched {value['matched']}"
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
