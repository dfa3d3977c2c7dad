"""Conversion throughput: our full path against a naive stack, in the same run.

Ours: parse + map + check + serialize (``convert_payload`` then ``json.dumps``).
Naive: the ``hl7`` package's parser, then ``fhir.resources`` ``model_validate`` and
``model_dump_json`` on the same output Bundles. Rounds alternate between the two so
machine noise hits both alike; the best round of each is reported, with the median.
Before timing, every output is validated once with the full R4B models.

The ORU stress case (``bench/oru_stress.py``: 20 orders of 40 results, repetitions
throughout) is measured the same way and reported on its own.

Usage: python -m bench.bench_convert [--rounds N] [--corpus DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from shared.normalize import json_codec
from shared.normalize.context import ConversionContext
from shared.normalize.service import convert_payload

from .oru_stress import stress_message

DEFAULT_CORPUS = (
    Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "ms-fhir-converter" / "hl7v2"
)


def _ours(messages: list[bytes], ctx: ConversionContext) -> int:
    resources = 0
    for data in messages:
        bundle = convert_payload(data, ctx).bundle
        json_codec.dumps(bundle)
        resources += len(bundle["entry"])
    return resources


def _naive(texts: list[str], outputs: list[dict[str, Any]]) -> int:
    import hl7

    model = get_fhir_model_class("Bundle")
    resources = 0
    for text, bundle in zip(texts, outputs, strict=True):
        hl7.parse(text)
        model.model_validate(bundle).model_dump_json()
        resources += len(bundle["entry"])
    return resources


def run(corpus: Path, rounds: int) -> dict[str, Any]:
    """Measure both stacks over the corpus, and over the ORU stress case; the figures."""
    files = sorted(corpus.glob("*.hl7"))
    if not files:
        raise SystemExit(f"no .hl7 files in {corpus}")
    result = _measure([p.read_bytes() for p in files], rounds)
    result["stress"] = _measure([stress_message()], rounds)
    return result


def _measure(messages: list[bytes], rounds: int) -> dict[str, Any]:
    texts = [m.decode("utf-8-sig").replace("\r\n", "\r").replace("\n", "\r") for m in messages]
    ctx = ConversionContext(partner="bench", received=datetime(2026, 1, 1, tzinfo=UTC))
    outputs = [convert_payload(m, ctx).bundle for m in messages]
    bundle_model = get_fhir_model_class("Bundle")
    for bundle in outputs:  # every output is valid R4, checked with the full models
        bundle_model.model_validate(bundle)
    ours, naive = [], []
    resources = 0
    for _ in range(rounds):
        started = time.perf_counter()
        resources = _ours(messages, ctx)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        _naive(texts, outputs)
        naive.append(time.perf_counter() - started)
    n = len(messages)

    def rates(times: list[float]) -> dict[str, float]:
        best, median = min(times), statistics.median(times)
        return {
            "messages_per_s_best": n / best,
            "messages_per_s_median": n / median,
            "resources_per_s_best": resources / best,
        }

    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"Python {platform.python_version()}",
        "messages": n,
        "resources_per_pass": resources,
        "rounds": rounds,
        "ours": rates(ours),
        "naive": rates(naive),
        "all_outputs_valid_r4": True,
    }
    result["speedup_best"] = (
        result["ours"]["messages_per_s_best"] / result["naive"]["messages_per_s_best"]
    )
    result["speedup_median"] = (
        result["ours"]["messages_per_s_median"] / result["naive"]["messages_per_s_median"]
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = run(args.corpus, args.rounds)
    ours, naive = result["ours"], result["naive"]
    print(
        f"{result['messages']} messages, {result['resources_per_pass']} resources per pass, "
        f"{result['rounds']} rounds, all outputs valid R4"
    )
    print(
        f"ours : {ours['messages_per_s_best']:8.0f} msg/s  {ours['resources_per_s_best']:9.0f} "
        f"resources/s  (median {ours['messages_per_s_median']:.0f} msg/s)"
    )
    print(
        f"naive: {naive['messages_per_s_best']:8.0f} msg/s  {naive['resources_per_s_best']:9.0f} "
        f"resources/s  (median {naive['messages_per_s_median']:.0f} msg/s)"
    )
    print(
        f"speedup: {result['speedup_best']:.1f}x best, {result['speedup_median']:.1f}x median "
        "(target: 10x)"
    )
    stress = result["stress"]
    print(
        f"ORU stress case ({stress['resources_per_pass']} resources): ours "
        f"{stress['ours']['resources_per_s_best']:.0f} resources/s, naive "
        f"{stress['naive']['resources_per_s_best']:.0f}; speedup {stress['speedup_best']:.1f}x "
        f"best, {stress['speedup_median']:.1f}x median"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
