"""`intake run` (what `make run` starts) as a new user meets it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from devhost.azurite import free_storage_ports, ports_listening
from shared.platform.names import Table
from shared.platform.settings import Settings, development_connection_string
from shared.platform.storage import build_storage_clients
from shared.security import Partner, TablePartnerDirectory
from tests.support.hostproc import REPO, free_port, wait_for

pytestmark = pytest.mark.azurite


@pytest.fixture
def fresh_root(tmp_path):  # type: ignore[no-untyped-def]
    """A folder laid out like a clone, without local.settings.json or state."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("function_app.py", "host.json", "local.settings.example.json"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "functions", root / "functions")
    (root / "node_modules").symlink_to(REPO / "node_modules")
    return root


def test_run_serves_health_writes_credentials_and_stops_cleanly(fresh_root) -> None:  # type: ignore[no-untyped-def]
    port, storage = free_port(), free_storage_ports()[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AzureWebJobs", "INTAKE_"))}
    log = (fresh_root / "run.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from intake_cli.main import main; main()",
            "run",
            "--root",
            str(fresh_root),
            "--port",
            str(port),
            "--storage-port",
            str(storage),
        ],
        cwd=fresh_root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        umask=0,  # whatever the user's umask, local data is private (the review's LOW-6)
    )
    try:

        def healthy() -> bool:
            try:
                return (
                    httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
                )
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=90, interval=0.5, what="health 200")
        assert time.monotonic() - started < 90
        state = json.loads(
            wait_for(
                lambda: (
                    (fresh_root / ".intake" / "dev.json").exists()
                    and (fresh_root / ".intake" / "dev.json").read_text()
                ),
                what="dev.json",
            )
        )
        assert state["base_url"] == f"http://127.0.0.1:{port}/api"
        settings = json.loads((fresh_root / "local.settings.json").read_text())
        assert state["function_key"] == settings["DevHost"]["FunctionKeys"]["default"]
        assert len(state["function_key"]) >= 32
        # The demo partner's key is real: the partner directory accepts it.
        clients = build_storage_clients(
            Settings(  # type: ignore[call-arg]
                AzureWebJobsStorage=development_connection_string(blob_port=storage)
            )
        )
        directory = TablePartnerDirectory(clients.table_client(Table.PARTNERS))
        partner = directory.authenticate(state["partner"]["api_key"])
        assert isinstance(partner, Partner) and partner.id == state["partner"]["id"]
        admin = directory.authenticate(state["admin"]["api_key"])
        assert admin is not None and "admin" in admin.roles
        assert state["partner"]["api_key"] in (fresh_root / "run.log").read_text()
        private = [fresh_root / "local.settings.json", fresh_root / ".azurite"]
        private += [fresh_root / ".intake", *(fresh_root / ".azurite").rglob("*")]
        private += (fresh_root / ".intake").rglob("*")
        assert len(private) > 5  # Azurite's databases and extents are among them
        readable = {str(p.relative_to(fresh_root)): oct(p.stat().st_mode & 0o777) for p in private}
        assert {p: m for p, m in readable.items() if int(m, 8) & 0o077} == {}
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(60)
        log.close()
    assert code == 0, (fresh_root / "run.log").read_text()
    # Nothing left behind: the Azurite it started is gone too.
    wait_for(
        lambda: not ports_listening("127.0.0.1", (storage, storage + 1, storage + 2)),
        timeout=15,
        what="Azurite to stop",
    )
    assert not ports_listening("127.0.0.1", (port,))
