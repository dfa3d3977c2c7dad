"""``intake partners add|list|revoke-key`` against Azurite."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from intake_cli.main import main
from shared import wiring
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


def test_update_show_relate_and_unrelate_are_audited(storage_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    provision_storage(wiring.storage())
    settings = ["--settings", str(tmp_path / "absent.json")]
    oid = "urn:oid:2.16.840.1.113883.3.999"
    added = CliRunner().invoke(
        main,
        [
            "partners",
            "add",
            "hosp-a",
            "--name",
            "Hospital A",
            "--role",
            "ingest",
            "--authority",
            oid,
            "--no-key",
            *settings,
        ],
    )
    assert added.exit_code == 0, added.output
    updated = CliRunner().invoke(
        main,
        [
            "partners",
            "update",
            "hosp-a",
            "--add-role",
            "read",
            "--add-role",
            "break-glass",
            "--add-purpose",
            "TREAT",
            "--add-purpose",
            "ETREAT",
            "--add-consent-system",
            oid,
            "--remove-authority",
            oid,
            *settings,
        ],
    )
    assert updated.exit_code == 0, updated.output
    partner = wiring.partners().get("hosp-a")
    assert partner is not None
    assert {r.value for r in partner.roles} == {"ingest", "read", "break-glass"}
    assert partner.authorities == frozenset() and partner.consent_systems == {oid}
    assert partner.purposes == {"TREAT", "ETREAT"}
    shown = CliRunner().invoke(main, ["partners", "show", "hosp-a", *settings])
    assert shown.exit_code == 0 and f"consent systems: {oid}" in shown.output
    bad = CliRunner().invoke(
        main, ["partners", "update", "hosp-a", "--add-purpose", "x", *settings]
    )
    assert bad.exit_code == 2 and "purpose" in bad.output
    assert CliRunner().invoke(main, ["partners", "update", "nobody", *settings]).exit_code == 1

    related = CliRunner().invoke(main, ["partners", "relate", "hosp-a", "p-123", *settings])
    assert related.exit_code == 0, related.output
    assert wiring.person_index().rows("p-123").related == {"hosp-a"}
    assert (
        CliRunner().invoke(main, ["partners", "relate", "nobody", "p-123", *settings]).exit_code
        == 1
    )
    assert (
        CliRunner().invoke(main, ["partners", "relate", "hosp-a", "Patient/x", *settings]).exit_code
        == 2
    )
    gone = CliRunner().invoke(main, ["partners", "unrelate", "hosp-a", "p-123", *settings])
    assert gone.exit_code == 0 and wiring.person_index().rows("p-123").related == frozenset()
    again = CliRunner().invoke(main, ["partners", "unrelate", "hosp-a", "p-123", *settings])
    assert again.exit_code == 1 and "not registered" in again.output

    trail = [e for e in BlobAuditLog(wiring.storage()).events_on(datetime.now(UTC).date())]
    actions = [(e["subtype"][0]["code"], e["entity"][0]["what"]["reference"]) for e in trail]
    assert ("partner-relate", "Patient/p-123") in actions
    assert ("partner-unrelate", "Patient/p-123") in actions
    upserts = [e for e in trail if e["subtype"][0]["code"] == "partner-upsert"]
    details = [{d["type"]: d["valueString"] for d in e["entity"][0]["detail"]} for e in upserts]
    assert any(
        d.get("roles") == "break-glass,ingest,read" and d.get("consent-systems") == oid
        for d in details
    )
