"""``intake replay deliveries --subscription ID [--since T]`` on Azurite."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from intake_cli.main import main
from shared import wiring
from shared.notify.models import Delivery, DeliveryState, Event
from shared.platform import Envelope
from shared.platform.names import Queue
from shared.platform.provision import provision_storage

pytestmark = pytest.mark.azurite
SUB = "c" * 32


def dead(number: int, at: datetime) -> Delivery:
    letter = Delivery(
        subscription=SUB,
        key=f"Observation|o{number}|1",
        number=number,
        event=Event.CREATE,
        state=DeliveryState.DEAD,
        sent=3,
        correlation_id=f"ing-{number}",
        partner="hosp",
        blob=f"Observation/o{number}/_history/1.json",
        created=at,
    )
    wiring.dead_letters().put(letter, at)
    return letter


def test_replays_dead_letters_since_a_time(storage_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    provision_storage(wiring.storage())
    dead(1, datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
    dead(2, datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    settings = ["--settings", str(tmp_path / "absent.json")]  # the environment is enough
    refused = CliRunner().invoke(main, ["replay", "deliveries", *settings])
    assert refused.exit_code == 2 and "--subscription" in refused.output

    result = CliRunner().invoke(
        main,
        [
            "replay",
            "deliveries",
            "--subscription",
            SUB,
            "--since",
            "2026-03-02T00:00:00+0000",
            *settings,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 dead-lettered deliveries" in result.output
    messages = wiring.storage().queue_client(Queue.DELIVER).receive_messages(max_messages=10)
    queued = [Envelope.from_bytes(m.content) for m in messages]
    assert [(e.subscription, e.correlation_id, e.attempt) for e in queued] == [(SUB, "ing-2", 0)]
    row = wiring.deliveries().get(SUB, "Observation|o2|1")
    assert row is not None and row.state is DeliveryState.PENDING and row.sent == 0
    assert [d.number for d in wiring.dead_letters().list(SUB)] == [1]  # the older one stays
