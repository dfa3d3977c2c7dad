"""The Azurite benchmarks still run (tiny sizes, no timing asserted): a benchmark that
broke when the code under it changed would only be noticed when someone needs a figure."""

from __future__ import annotations

import pytest

from bench import (
    bench_consent,
    bench_console,
    bench_export,
    bench_mllp,
    bench_notify,
    bench_reader,
    bench_store,
)
from tests.support.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.azurite


def test_bench_consent_runs(storage_env) -> None:  # type: ignore[no-untyped-def]
    result = bench_consent.run(records=40, rounds=1)
    assert result["patients"] == 20 and result["opted_out"] == 1
    assert result["ours"]["records_per_s_best"] > 0 and result["engine"]["consents_per_decision"]


def test_bench_console_runs(storage_env) -> None:  # type: ignore[no-untyped-def]
    result = bench_console.run(rows=120, rounds=1)
    assert result["message id, every partner"]["matched"] == 1  # the seeded message, found
    # One partner of eight over the last of two days: some of its rows, never all of them.
    assert 0 < result["one partner, last day (baseline)"]["matched"] < 120 // 8


def test_bench_store_runs(storage_env) -> None:  # type: ignore[no-untyped-def]
    result = bench_store.run(records=20, rounds=1)
    assert result["resources_per_bundle"] == 21  # 10 Patients, 10 Observations, Provenance
    assert result["sequential"]["resources_per_s_best"] > 0


def test_bench_export_runs(storage_env) -> None:  # type: ignore[no-untyped-def]
    result = bench_export.run(records=20, rounds=1)
    assert result["resources_exported"] == 21  # every stored resource, in both settings
    assert result["sequential"]["resources_per_s_best"] > 0


def test_bench_mllp_runs(storage_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = bench_mllp.run(messages=8, work=tmp_path)
    assert [case["acks"] for case in result["mllp"]] == [{"AA": 8}] * 3
    assert [case["acks"] for case in result["http"]] == [{"AA": 8}] * 3
    counted = bench_mllp.COUNTED + 1  # and the counted phase's, after its first message
    assert result["on_record"] == {"mllp": 64 + counted, "http": 64}  # 40 warm-up, 3 x 8
    per_message = result["storage_per_message"]
    assert 4 <= per_message["requests"] <= 10, per_message  # claim, blob, journey, audit...
    assert per_message["by_operation"]


def test_bench_notify_runs(storage_env, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("INTAKE_LOCAL_SECRETS_FILE", str(tmp_path / "secrets.json"))
    with webhook_receiver() as receiver:
        result = bench_notify.run(records=20, rounds=1, receiver_url=f"{receiver.url}/hook")
        assert len(receiver.received) == result["deliveries_per_round"] > 0
    assert result["changes_per_round"] == 21
    assert result["ours"]["changes_per_s_best"] > 0


def test_bench_reader_runs() -> None:
    result = bench_reader.run([1])
    assert [(f["blocks"], f["records"], f["rejected"]) for f in result["lines"]] == [
        ("one block", 1, 0),
        ("4 MiB blocks", 1, 0),
    ]
