"""C-CDA conversion throughput: our adapter against the ccda-to-fhir library on its own,
in the same run, over Microsoft's 22 sample documents.

Ours: ``convert_payload`` (hardened parse, the library's model and mapping, part-by-part
retry, our ids and fixes, full R4B validation of every resource, the checks) then
``json_codec.dumps``. The library alone: ``ccda_to_fhir.convert_document`` on the text
(its own unhardened parser and mapping), then ``json.dumps``. The comparison is over the
documents the library converts on its own (20: it refuses 170.314B2_Amb_CCD and the
authorless one); ours is also timed over all 22. Rounds alternate so noise hits both
alike; the best and the median round are reported. The library's loggers are silenced
for both (importing our adapter does that), so neither pays for its log lines.

Usage: python -m bench.bench_ccda [--rounds N] [--corpus DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.normalize import json_codec
from shared.normalize.ccda import library  # noqa: F401 - silences the library's loggers
from shared.normalize.context import ConversionContext
from shared.normalize.errors import NormalizationError
from shared.normalize.service import convert_payload

from .figures import machine_facts

DEFAULT_CORPUS = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "corpus"
    / "ms-fhir-converter"
    / "ccda"
    / "samples"
)
_BUDGET = 0.20  # the adapter may add under a fifth to the library's own time


def _ours(documents: list[bytes], ctx: ConversionContext) -> int:
    resources = 0
    for data in documents:
        try:
            bundle = convert_payload(data, ctx).bundle
        except NormalizationError:
            continue
        json_codec.dumps(bundle)
        resources += len(bundle["entry"])
    return resources


def _library(texts: list[str]) -> int:
    from ccda_to_fhir import convert_document

    resources = 0
    for text in texts:
        bundle = convert_document(text)["bundle"]
        json.dumps(bundle, default=str)
        resources += len(bundle["entry"])
    return resources


def _library_converts(text: str) -> bool:
    from ccda_to_fhir import convert_document

    try:
        convert_document(text)
    except Exception:  # noqa: BLE001 - the library raises anything; this only sorts samples
        return False
    return True


def run(corpus: Path, rounds: int) -> dict[str, Any]:
    """Time both over the corpus; the figures."""
    files = sorted(corpus.glob("*.ccda"))
    if not files:
        raise SystemExit(f"no .ccda files in {corpus}")
    ctx = ConversionContext(partner="bench", received=datetime(2026, 1, 1, tzinfo=UTC))
    every = [p.read_bytes() for p in files]
    common = [d for d in every if _library_converts(d.decode("utf-8"))]
    texts = [d.decode("utf-8") for d in common]
    times: dict[str, list[float]] = {"ours": [], "library": [], "ours_all": []}
    counts: dict[str, int] = {}
    for _ in range(rounds):
        for label, work in (
            ("ours", lambda: _ours(common, ctx)),
            ("library", lambda: _library(texts)),
            ("ours_all", lambda: _ours(every, ctx)),
        ):
            started = time.perf_counter()
            counts[label] = work()
            times[label].append(time.perf_counter() - started)
    result: dict[str, Any] = {**machine_facts(), "rounds": rounds}
    for label, measured in times.items():
        n = len(every) if label == "ours_all" else len(common)
        result[label] = {
            "documents": n,
            "resources_per_pass": counts[label],
            "documents_per_s_best": n / min(measured),
            "documents_per_s_median": n / statistics.median(measured),
            "resources_per_s_best": counts[label] / min(measured),
        }
    result["overhead_best"] = min(times["ours"]) / min(times["library"]) - 1
    result["overhead_median"] = (
        statistics.median(times["ours"]) / statistics.median(times["library"]) - 1
    )
    result["budget"] = _BUDGET
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = run(args.corpus, args.rounds)
    for label in ("ours", "library", "ours_all"):
        r = result[label]
        print(
            f"{label:8}: {r['documents']} documents, {r['resources_per_pass']} resources: "
            f"{r['documents_per_s_best']:6.1f} documents/s best "
            f"({r['documents_per_s_median']:.1f} median), "
            f"{r['resources_per_s_best']:7.0f} resources/s"
        )
    print(
        f"adapter overhead on the common documents: {result['overhead_best']:+.0%} best, "
        f"{result['overhead_median']:+.0%} median (budget: under +{_BUDGET:.0%})"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
