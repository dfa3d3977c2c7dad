"""Figures of a benchmark that times ours against a baseline on the same work: the
machine, the best and median rate of each, and the median speed-up, printed and kept."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def machine_facts() -> dict[str, str]:
    """When and where a figure was measured, as every benchmark records it."""
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}",
        "python": sys.version.split()[0],
    }


def against_baseline(
    times: dict[str, list[float]], work: int, unit: str, **facts: Any
) -> dict[str, Any]:
    """``times``: seconds per round for "ours" and "sequential", each round doing
    ``work`` of ``unit`` (e.g. resources); ``facts`` go into the result as they are."""
    result: dict[str, Any] = {**machine_facts(), **facts}
    for label, measured in times.items():
        result[label] = {
            f"{unit}_per_s_best": work / min(measured),
            f"{unit}_per_s_median": work / statistics.median(measured),
        }
    result["speedup_median"] = (
        result["ours"][f"{unit}_per_s_median"] / result["sequential"][f"{unit}_per_s_median"]
    )
    return result


def report(result: dict[str, Any], unit: str, json_path: Path | None) -> None:
    """Print both rates and the speed-up; write the result as JSON if asked."""
    for label in ("ours", "sequential"):
        figures = result[label]
        print(
            f"{label:10}: {figures[f'{unit}_per_s_best']:6.0f} {unit}/s best, "
            f"{figures[f'{unit}_per_s_median']:6.0f} median"
        )
    print(f"speedup (median): {result['speedup_median']:.1f}x")
    if json_path:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
