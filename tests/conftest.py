"""Session fixtures: a real Azurite, and storage names no other test run shares.

Azurite is started for the run (data in a temporary folder, from the repo's
node_modules) on free ports: an Azurite of another run (``make run``'s, another test
session's) is never shared, since its owner may stop it half-way through this run. The
per-test name prefix keeps each test's containers, queues and tables apart.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.azurite import start_azurite_on_free_ports
from shared import wiring
from shared.platform.settings import development_connection_string

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A connection string for an Azurite of this run's own, on free ports."""
    location = tmp_path_factory.mktemp("azurite")
    process = start_azurite_on_free_ports(REPO, location, log_file=location / "azurite.log")
    try:
        yield development_connection_string(blob_port=process.ports[0])
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
