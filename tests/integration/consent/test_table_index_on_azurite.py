"""The consent index and the audit log on a real Azurite."""

from __future__ import annotations

import json

import pytest

from shared import wiring
from shared.consent.adapters.table_index import TableConsentIndex, key_partition
from shared.platform.adapters import BlobAuditLog
from shared.platform.names import Container, Table
from shared.platform.provision import provision_storage

pytestmark = pytest.mark.azurite
MRN = "urn:oid:1.2.3|MRN-1"


def _consent(rule: str, date: str, ident: str = "c1") -> dict[str, object]:
    return {
        "resourceType": "Consent",
        "id": ident,
        "status": "active",
        "dateTime": date,
        "policyRule": {"coding": [{"code": rule}]},
    }


@pytest.fixture
def index(storage_env) -> TableConsentIndex:  # type: ignore[no-untyped-def]
    clients = wiring.storage()
    provision_storage(clients)
    return TableConsentIndex(
        clients.table_client(Table.CONSENT_INDEX), clients.container(Container.CONSENTS)
    )


def test_found_by_any_key_once(index: TableConsentIndex) -> None:
    assert index.put(_consent("OPTOUT", "2026-01-01"), {MRN, "Patient/p1"})
    assert index.put(_consent("OPTIN", "2026-01-02", "c2"), {"Patient/p1"})
    found = index.find({MRN, "Patient/p1"})
    assert sorted(c["id"] for c in found) == ["c1", "c2"]
    assert [c["id"] for c in index.find({MRN})] == ["c1"]
    assert index.find({"urn:oid:1.2.3|someone-else"}) == []


def test_an_older_version_arriving_late_does_not_replace_a_newer_one(
    index: TableConsentIndex,
) -> None:
    assert index.put(_consent("OPTIN", "2026-03-01"), {MRN})
    assert not index.put(_consent("OPTOUT", "2026-01-01"), {MRN})
    (kept,) = index.find({MRN})
    assert kept["policyRule"]["coding"][0]["code"] == "OPTIN"
    assert index.put({**_consent("OPTIN", "2026-03-01"), "status": "inactive"}, {MRN})
    assert index.find({MRN})[0]["status"] == "inactive"  # same date: a withdrawal counts


def test_no_identifier_in_table_keys(index: TableConsentIndex) -> None:
    index.put(_consent("OPTOUT", "2026-01-01"), {MRN})
    rows = list(wiring.storage().table_client(Table.CONSENT_INDEX).list_entities())
    assert rows and all("MRN-1" not in json.dumps(dict(r)) for r in rows)
    assert rows[0]["PartitionKey"] == key_partition(MRN)


def test_audit_events_are_written_once(storage_env) -> None:  # type: ignore[no-untyped-def]
    clients = wiring.storage()
    provision_storage(clients)
    log = BlobAuditLog(clients)
    event = {"resourceType": "AuditEvent", "id": "e1", "recorded": "2026-06-15T12:00:00+00:00"}
    name = log.write(event)
    assert name == "AuditEvent/2026/06/15/e1.json"
    assert log.write({**event, "outcome": "8"}) == name  # a retry leaves the first as it is
    stored = json.loads(clients.container(Container.AUDIT).download_blob(name).readall())
    assert "outcome" not in stored


def test_a_unit_of_works_audit_events_are_one_ndjson_blob(storage_env) -> None:  # type: ignore[no-untyped-def]
    clients = wiring.storage()
    provision_storage(clients)
    log = BlobAuditLog(clients)
    events = [
        {"resourceType": "AuditEvent", "id": f"e{i}", "recorded": "2026-06-15T12:00:00+00:00"}
        for i in range(3)
    ]
    name = log.write_batch(events, "ing-7")
    assert name is not None and name.startswith("AuditEvent/2026/06/15/ing-7-")
    assert log.write_batch(events, "ing-7") == name  # the same retry: nothing new
    other = log.write_batch(events[:1], "ing-7")
    assert other != name  # a retry that decided otherwise keeps both records
    lines = clients.container(Container.AUDIT).download_blob(name).readall().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["e0", "e1", "e2"]
    assert log.write_batch([], "ing-8") is None


def test_a_decimal_in_an_extension_keeps_its_digits(index: TableConsentIndex) -> None:
    from decimal import Decimal

    consent = {
        **_consent("OPTOUT", "2026-01-01", "c3"),
        "extension": [{"url": "https://example.org/weight", "valueDecimal": Decimal("5.10")}],
    }
    assert index.put(consent, {MRN})
    (kept,) = index.find({MRN})
    assert str(kept["extension"][0]["valueDecimal"]) == "5.10"
