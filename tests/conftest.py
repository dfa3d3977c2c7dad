"""Session fixtures: a real Azurite, and storage names no other test run shares.

Azurite is started (data in a temporary folder, from the repo's node_modules) only
when nothing listens on 10000-10002; one that already runs (``make run``'s, say) is
reused, and the per-test name prefix keeps this run's containers, queues and tables
apart from it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.azurite import DEFAULT_PORTS, ports_listening, start_azurite
from shared.platform import wiring
from shared.platform.settings import development_connection_string

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A connection string for a running Azurite."""
    busy = ports_listening("127.0.0.1", DEFAULT_PORTS)
    if len(busy) == len(DEFAULT_PORTS):
        yield development_connection_string()
        return
    if busy:
        pytest.exit(f"ports {busy} are taken by something that is not a whole Azurite", 2)
    location = tmp_path_factory.mktemp("azurite")
    process = start_azurite(REPO, location / "data", log_file=location / "azurite.log")
    try:
        yield development_connection_string()
    finally:
        process.stop()


@pytest.fixture
def storage_env(azurite: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """App settings for this test: Azurite, and a storage prefix of its own."""
    env = {
        "AzureWebJobsStorage": azurite,
        "INTAKE_STORAGE_PREFIX": "t" + secrets.token_hex(5),
        "INTAKE_ENVIRONMENT": "development",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    wiring.reset_caches()
    yield env
    wiring.reset_caches()
