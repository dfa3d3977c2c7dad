"""``intake partners add|list|revoke-key`` against Azurite."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from intake_cli.main import main
from shared.platform import wiring
from shared.platform.adapters import BlobAuditLog
from shared.platform.provision import provision_storage

pytestmark = pytest.mark.azurite


def test_add_list_and_revoke(storage_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    provision_storage(wiring.storage())
    settings = ["--settings", str(tmp_path / "absent.json")]
    added = CliRunner().invoke(
        main,
        [
            "partners",
            "add",
            "acme-lab",
            "--name",
            "Acme Lab",
            "--role",
            "ingest",
            "--role",
            "read",
            "--identifier",
            "http://hl7.org/fhir/sid/us-npi|1234567893",
            "--principal",
            "app-acme",
            *settings,
        ],
    )
    assert added.exit_code == 0, added.output
    token = added.output.split("API key (shown once): ")[1].strip()
    partner = wiring.partners().authenticate(token)
    assert partner is not None and partner.id == "acme-lab"
    assert {r.value for r in partner.roles} == {"ingest", "read"}
    assert wiring.partners().by_principal("app-acme") == partner

    listed = CliRunner().invoke(main, ["partners", "list", *settings])
    assert listed.exit_code == 0 and "acme-lab" in listed.output
    key_id = token.split("_")[1]
    assert f"key {key_id}\tactive\tlast used 20" in listed.output
    assert token.split("_")[2] not in listed.output  # the secret is never printed again

    revoked = CliRunner().invoke(main, ["partners", "revoke-key", key_id, *settings])
    assert revoked.exit_code == 0 and wiring.partners().authenticate(token) is None
    trail = [
        event
        for day in {datetime.now(UTC).date()}
        for event in BlobAuditLog(wiring.storage()).events_on(day)
    ]
    actions = {(e["subtype"][0]["code"], e["entity"][0]["what"]["reference"]) for e in trail}
    assert {
        ("partner-upsert", "Organization/acme-lab"),
        ("api-key-issue", "Organization/acme-lab"),
        ("api-key-revoke", "Organization/acme-lab"),
    } <= actions
    assert all(token.split("_")[2] not in str(e) for e in trail)  # no secret in the trail
    missing = CliRunner().invoke(main, ["partners", "revoke-key", "0" * 16, *settings])
    assert missing.exit_code == 1 and "no key" in missing.output
    bad = CliRunner().invoke(main, ["partners", "add", "Bad Id!", "--name", "x", *settings])
    assert bad.exit_code == 2 and "id" in bad.output
