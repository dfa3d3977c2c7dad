"""A record that always fails: retried, kept in normalize-poison with the failure on its
journey, and brought back by `intake replay normalize` once the cause is fixed (here, a
planted converter bug, fixed by starting the real app), to end stored exactly once."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.pipeline.journey import TableIngestionLog
from shared.platform.names import Queue, Table, poison_queue
from shared.security import Partner
from tests.e2e.conftest import make_env, product_host, storage_with_partner
from tests.support.hostproc import wait_for

pytestmark = pytest.mark.azurite

HL7 = (
    "MSH|^~\\&|LAB|ACME|EHR|HOSP|20260301101500||ORU^R01^ORU_R01|CTRL-{n}|P|2.5.1\r"
    "PID|1||MRN-{n}^^^ACME^MR||{family}^Jane||19700101|F\r"
    "OBR|1|P-{n}|F-{n}|24331-1^Lipid panel^LN|||20260301080000||||||||||||||||||F\r"
    "OBX|1|NM|2093-3^Cholesterol^LN||195|mg/dL^mg/dL^UCUM|||||F|||20260301080000\r"
)


def test_a_failing_record_waits_in_poison_and_replay_brings_it_back(
    azurite: str, tmp_path: Path
) -> None:
    env = {**make_env(azurite), "AzureWebJobs.notify.Disabled": "true"}
    clients, key = storage_with_partner(env, Partner(id="lab", name="Lab"))
    journeys = TableIngestionLog(clients.table_client(Table.INGESTIONS))

    faulty = product_host(tmp_path, env, app="faulty_app:app", name="faulty").start()
    try:
        with httpx.Client(base_url=f"{faulty.base_url}/api", timeout=30) as api:
            ids = []
            for n, family in ((1, "POISON-PILL"), (2, "Healthy")):
                answer = api.post(
                    "/ingest",
                    content=HL7.format(n=n, family=family).encode(),
                    headers={
                        "x-functions-key": "fk",
                        "x-api-key": key,
                        "content-type": "x-application/hl7-v2+er7",
                        "idempotency-key": secrets.token_hex(8),
                    },
                )
                assert answer.status_code == 202, answer.text
                ids.append(answer.json()["id"])
        poisoned, healthy = ids
        wait_for(
            lambda: (journeys.get("lab", healthy) or {}).get("store_status") == "stored",
            timeout=60,
            what="the healthy record stored",
        )
        parked = clients.queue_client(poison_queue(Queue.NORMALIZE))
        wait_for(
            lambda: parked.get_queue_properties().approximate_message_count == 1,
            timeout=60,
            what="the failing record in normalize-poison",
        )
        row: dict[str, Any] = journeys.get("lab", poisoned) or {}
        assert row["normalize_status"] == "failed"
        issue = row["normalize_issues"]
        assert "ZeroDivisionError" in issue and "normalize-poison" in issue
        assert "intake replay normalize" in issue
        assert "planted" not in issue  # the exception's text may quote data: never kept
        assert "store_status" not in row
    finally:
        assert faulty.stop() == 0, faulty.logs()

    fixed = product_host(tmp_path, env, name="fixed").start()
    try:
        replay = subprocess.run(
            [sys.executable, "-m", "intake_cli", "replay", "normalize", "--settings", "none"],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert replay.returncode == 0, replay.stderr
        assert "1 message(s) moved" in replay.stdout
        wait_for(
            lambda: (journeys.get("lab", poisoned) or {}).get("store_status") == "stored",
            timeout=60,
            what="the replayed record stored",
        )
        row = journeys.get("lab", poisoned) or {}
        assert row["normalize_status"] == "normalized"
        assert row["store_created"] >= 2  # its Patient and Observation, once
        assert parked.get_queue_properties().approximate_message_count == 0
    finally:
        assert fixed.stop() == 0, fixed.logs()
