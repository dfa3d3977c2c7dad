"""Storage goes away under the MLLP listener: senders get AR (HL7 v2 ch. 2.9.2.2: not
stored for reasons unrelated to the message, resend it unchanged; never AA for what was
not stored) and the connection is closed so nothing pipelined overtakes the resend; the
listener stays up, and once storage is back every message ends stored once.

Runs its own Azurite (stopping the session's would take every other test down with it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devhost.azurite import start_azurite, start_azurite_on_free_ports
from mllp_listener.client import MllpClient
from shared.platform.names import Container
from shared.platform.settings import development_connection_string
from shared.security import Partner
from tests.e2e.conftest import storage_with_partner
from tests.e2e.test_mllp import adt, fields
from tests.support.hostproc import REPO
from tests.support.mllpproc import MllpProcess

pytestmark = pytest.mark.azurite

MESSAGES = 30


@pytest.mark.timeout(300)
def test_storage_outage_gives_ar_then_aa_and_loses_nothing(tmp_path: Path) -> None:
    location = tmp_path / "azurite"
    azurite = start_azurite_on_free_ports(REPO, location, log_file=tmp_path / "azurite.log")
    ports = azurite.ports
    env = {
        "AzureWebJobsStorage": development_connection_string(blob_port=ports[0]),
        "INTAKE_ENVIRONMENT": "development",
    }
    clients, _ = storage_with_partner(env, Partner(id="lab-o", name="Outage Lab"))
    listener = MllpProcess(
        ["--port", "0", "--host", "127.0.0.1", "--partner", "lab-o"], env, tmp_path / "mllp.log"
    ).start()
    codes: dict[str, list[str]] = {}
    client: MllpClient | None = None

    def send(n: int, once: bool = False) -> None:
        """As an engine does: send, and after an AR reconnect and resend until AA."""
        nonlocal client
        message = adt("A01", f"OUT-{n}", f"MRN-OUT{n}", f"V-OUT{n}")
        while True:
            if client is None:
                client = MllpClient("127.0.0.1", listener.port, timeout=60)
            code = fields(client.request(message))[1][1]
            codes.setdefault(f"OUT-{n}", []).append(code)
            if code != "AA":
                client.close()  # the listener closes after an AR
                client = None
            if code == "AA" or once:
                return
            time.sleep(0.5)

    try:
        for n in range(MESSAGES):
            if n == 10:
                azurite.stop()
            if n == 20:
                azurite = start_azurite(
                    REPO, location, ports=ports, log_file=tmp_path / "azurite2.log"
                )
            send(n, once=10 <= n < 20)
        for n in range(10, 20):  # refused while storage was down: sent again now
            send(n)
        if client is not None:
            client.close()
        assert listener.process is not None and listener.process.poll() is None  # still up
        raw = clients.container(Container.RAW)
        stored = [raw.download_blob(b.name).readall() for b in raw.list_blobs()]
    finally:
        listener.stop()
        azurite.stop()
    during = [codes[f"OUT-{n}"][0] for n in range(10, 20)]
    assert set(during) == {"AR"}, codes  # never an AA while it could not be stored
    assert all(codes[f"OUT-{n}"][-1] == "AA" for n in range(MESSAGES)), codes
    for n in range(MESSAGES):  # every message stored exactly once
        assert sum(f"|OUT-{n}|".encode() in body for body in stored) == 1, n
    assert "mllp: storage unavailable" in listener.logs()
