"""``intake run``: the whole product on one machine.

Creates ``local.settings.json`` with fresh keys if missing, starts Azurite unless one
already listens, provisions storage, registers the demo partner, starts the host,
then writes ``.intake/dev.json`` and prints how to call it. Ctrl-C stops the host
(gracefully) and then the Azurite it started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from shared import wiring
from shared.platform.names import Setting, Table
from shared.platform.provision import provision_storage
from shared.platform.settings import development_connection_string
from shared.security import Partner, Role, TablePartnerDirectory

from .azurite import DEFAULT_PORTS, AzuriteProcess, ports_listening, start_azurite
from .config import apply_values, load_local_settings
from .host import HostConfig, LocalHost
from .private_files import narrow, private_dir, write_private

__all__ = ["DEMO_PARTNER", "ensure_local_settings", "run_stack"]

log = logging.getLogger("devhost")
DEMO_PARTNER = Partner(
    id="demo-partner",
    name="Demo partner",
    roles=frozenset({Role.INGEST}),
    time_zone="America/New_York",
)
HL7_TYPE = "x-application/hl7-v2+er7"
OPERATOR = Partner(id="local-operator", name="Local operator", roles=frozenset({Role.ADMIN}))


def ensure_local_settings(root: Path) -> Path:
    """Copy local.settings.example.json to local.settings.json with new random keys.

    An existing file is kept: only empty keys and settings it lacks are filled in.
    """
    target = root / "local.settings.json"
    source = target if target.exists() else root / "local.settings.example.json"
    doc: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    dev = doc.setdefault("DevHost", {})
    keys = dev.setdefault("FunctionKeys", {})
    changed = not target.exists()
    example = json.loads((root / "local.settings.example.json").read_text(encoding="utf-8"))
    values = doc.setdefault("Values", {})
    for name, value in example.get("Values", {}).items():
        if name not in values:  # settings added since this file was made
            values[name], changed = value, True
    if not keys.get("default"):
        keys["default"], changed = secrets.token_urlsafe(32), True
    if not dev.get("MasterKey"):
        dev["MasterKey"], changed = secrets.token_urlsafe(32), True
    if changed:
        write_private(target, json.dumps(doc, indent=2) + "\n")
    narrow(target)  # kept as it was: still nobody else's to read
    return target


def _register(state_file: Path) -> dict[str, Any]:
    """Register the demo partner and operator; reuse their keys while still valid."""
    directory = TablePartnerDirectory(wiring.storage().table_client(Table.PARTNERS))
    previous: dict[str, Any] = {}
    if state_file.exists():
        previous = json.loads(state_file.read_text(encoding="utf-8"))
    credentials = {}
    for partner, slot in ((DEMO_PARTNER, "partner"), (OPERATOR, "admin")):
        directory.upsert(partner)
        token = previous.get(slot, {}).get("api_key", "")
        if not token or directory.authenticate(token) != partner:
            token = directory.issue_key(partner.id).token
        credentials[slot] = {"id": partner.id, "api_key": token}
    return credentials


def _banner(state: dict[str, Any]) -> str:
    base, key = state["base_url"], state["function_key"]
    partner = state["partner"]
    auth = f"-H 'x-functions-key: {key}' -H 'X-API-Key: {partner['api_key']}'"
    return "\n".join(
        [
            "",
            "fhir-intake is running.",
            f"  Base URL:       {base}",
            f"  Function key:   {key}   (header x-functions-key)",
            f"  Demo partner:   {partner['id']}, API key {partner['api_key']}   (header X-API-Key)",
            f"  Operator:       {state['admin']['id']}, API key {state['admin']['api_key']}",
            f"  Console:        {base}/console   (sign in with the operator's API key)",
            "  Written to .intake/dev.json for scripts.",
            "",
            "Try it (the health check, a sample admission, then its journey):",
            f"  curl -s {base}/health",
            f"  curl -s -X POST {base}/ingest {auth} \\",
            f"       -H 'Content-Type: {HL7_TYPE}' --data-binary @docs/samples/adt-a01.hl7",
            f"  curl -s {base}/ingest/<id> {auth}",
            "",
            "Press Ctrl-C to stop.",
            "",
        ]
    )


def run_stack(root: Path, port: int = 7071, storage_port: int = DEFAULT_PORTS[0]) -> int:
    """Run everything until Ctrl-C; returns the exit code.

    Args:
        root: the repository (host.json, function_app.py, node_modules).
        port: the HTTP port of the host.
        storage_port: Azurite's blob port; queue and table take the next two.
    """
    settings_file = ensure_local_settings(root)
    settings_doc = json.loads(settings_file.read_text(encoding="utf-8"))
    ports = (storage_port, storage_port + 1, storage_port + 2)
    if storage_port != DEFAULT_PORTS[0]:
        os.environ[Setting.STORAGE] = development_connection_string(blob_port=storage_port)
    azurite: AzuriteProcess | None = None
    if ports_listening("127.0.0.1", ports):
        log.info("Storage ports %s are in use; using the Azurite already running", ports)
    else:
        log.info("Starting Azurite on ports %s (data in .azurite/)", ports)
        azurite = start_azurite(
            root, root / ".azurite", ports=ports, log_file=root / ".azurite" / "azurite.log"
        )
    state_dir = private_dir(root / ".intake")
    state_file = state_dir / "dev.json"
    host = LocalHost(HostConfig(root=root, port=port))

    async def on_ready(running: LocalHost) -> None:
        credentials = await asyncio.to_thread(_register, state_file)
        state = {
            "base_url": f"http://127.0.0.1:{running.port}/api",
            "function_key": settings_doc["DevHost"]["FunctionKeys"]["default"],
            **credentials,
        }
        write_private(state_file, json.dumps(state, indent=2) + "\n")
        print(_banner(state), file=sys.stderr, flush=True)

    async def main() -> None:
        host.install_signal_handlers()
        apply_values(load_local_settings(settings_file))
        wiring.reset_caches()
        count = await asyncio.to_thread(provision_storage, wiring.storage())
        log.info("Storage ready: %d containers, queues and tables", count)
        await host.run(on_ready)

    try:
        asyncio.run(main())
    finally:
        if azurite is not None:
            log.info("Stopping Azurite")
            azurite.stop()
    return 0
