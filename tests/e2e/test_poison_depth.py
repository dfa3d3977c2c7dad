"""The sweeper timer reports each poison queue that holds messages, through the local host's
real timer trigger: the line the poison-depth alert (infra/modules/alerts.bicep) reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.platform.names import Queue, poison_queue
from tests.e2e.conftest import product_api
from tests.support.hostproc import wait_for

pytestmark = pytest.mark.azurite

EVERY_SECOND = "* * * * * *"
STARTED = "Executing 'Functions.sweep_submissions'"
FINISHED = "Executed 'Functions.sweep_submissions' (Succeeded"


def test_the_sweeper_reports_poison_queues_until_they_are_empty(
    azurite: str, tmp_path: Path
) -> None:
    env = {"INTAKE_SWEEP_SCHEDULE": EVERY_SECOND}
    with product_api(azurite, tmp_path, [], "fk-poison", env) as api:
        host, clients = api["host"], api["clients"]
        poisoned = clients.queue_client(poison_queue(Queue.CONSENT_CHECK))
        for body in (b"first", b"second"):
            poisoned.send_message(body)
        clients.queue_client(poison_queue(Queue.DELIVER)).send_message(b"third")
        wait_for(
            lambda: (
                "poison: consent-check-poison holds 2" in host.logs()
                and "poison: deliver-poison holds 1" in host.logs()
            ),
            timeout=30,
            what="the sweeper's poison report",
        )
        assert not re.search(
            r"poison: (?!consent-check-poison|deliver-poison)\S+ holds", host.logs()
        )

        poisoned.clear_messages()
        clients.queue_client(poison_queue(Queue.DELIVER)).clear_messages()
        emptied = len(host.logs())

        def after_emptying() -> str:
            """The log from the first sweep that started after the queues were emptied."""
            later = host.logs()[emptied:]
            start = later.find(STARTED)
            return later[start:] if start >= 0 else ""

        wait_for(
            lambda: after_emptying().count(FINISHED) >= 2,
            timeout=30,
            what="two sweeps after the queues were emptied",
        )
        assert "poison: " not in after_emptying()
