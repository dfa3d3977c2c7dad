"""The drop stage's reader alone: seconds to split one NDJSON line of N MiB into records.

Each line is given as one block (the SDK hands over a blob's first 32 MiB as one chunk)
and in 4 MiB blocks (its later chunks), with a record limit above the line (it is read
and checked as JSON) and with the default 16 MiB (a longer line is skipped as it is
read). Pure: no storage, no host. The security review measured the reader before this
one at 1.7 s for 10 MiB and 154 s for 40 MiB.

Usage: python -m bench.bench_reader [--mib 10 40] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench.figures import machine_facts
from shared.intake.drops import DropReport, _records
from shared.normalize.models import PayloadFormat

MIB = 1024 * 1024
DEFAULT_LIMIT = 16 * MIB  # INTAKE_DROP_MAX_RECORD_BYTES's default


def _line(mib: int) -> bytes:
    """One FHIR Binary of ``mib`` MiB on one line (synthetic: a run of 'a')."""
    head, tail = b'{"resourceType": "Binary", "data": "', b'"}\n'
    return head + b"a" * (mib * MIB - len(head) - len(tail)) + tail


def time_line(mib: int, block: int, limit: int) -> dict[str, Any]:
    """Split one line of ``mib`` MiB given in blocks of ``block`` bytes; returns seconds,
    records and rejected."""
    line = _line(mib)
    blocks = [line[i : i + block] for i in range(0, len(line), block)]
    report = DropReport(file="bench", partner="bench")
    started = time.perf_counter()
    records = sum(
        1
        for _ in _records(
            PayloadFormat.FHIR, iter(blocks), report, max_record_bytes=limit, ndjson=True
        )
    )
    return {
        "seconds": time.perf_counter() - started,
        "records": records,
        "rejected": len(report.rejected),
    }


def run(sizes: list[int]) -> dict[str, Any]:
    """Every size, in one block and in 4 MiB blocks, read and skipped."""
    results: dict[str, Any] = {**machine_facts(), "lines": []}
    for mib in sizes:
        for label, block in (("one block", mib * MIB), ("4 MiB blocks", 4 * MIB)):
            for mode, limit in (("read", 64 * MIB), ("over the limit", DEFAULT_LIMIT)):
                if mode == "over the limit" and mib * MIB <= limit:
                    continue
                figure = {"mib": mib, "blocks": label, "mode": mode}
                figure.update(time_line(mib, block, limit))
                results["lines"].append(figure)
                print(
                    f"{mib:3d} MiB line, {label:12}, {mode:14}: {figure['seconds']:6.2f} s "
                    f"({figure['records']} record, {figure['rejected']} rejected)",
                    flush=True,
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = run(args.mib)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
