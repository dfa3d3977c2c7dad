"""The partner directory on Azure Table storage (Azurite)."""

from __future__ import annotations

import pytest

from shared import wiring
from shared.platform.names import Table
from shared.platform.provision import provision_storage
from shared.security import Partner, Role, TablePartnerDirectory, UnknownPartnerError
from shared.security.errors import PrincipalTakenError

pytestmark = pytest.mark.azurite


@pytest.fixture
def directory(storage_env) -> TablePartnerDirectory:  # type: ignore[no-untyped-def]
    provision_storage(wiring.storage())
    return TablePartnerDirectory(wiring.storage().table_client(Table.PARTNERS))


def test_issued_key_authenticates_its_partner_only(directory: TablePartnerDirectory) -> None:
    a = Partner(id="hospital-a", name="Hospital A")
    b = Partner(id="lab-b", name="Lab B", roles=frozenset({Role.INGEST, Role.READ}))
    directory.upsert(a)
    directory.upsert(b)
    key_a, key_b = directory.issue_key(a.id), directory.issue_key(b.id)
    assert directory.authenticate(key_a.token) == a
    assert directory.authenticate(key_b.token) == b
    tampered = key_a.token[:-1] + ("A" if key_a.token[-1] != "A" else "B")
    assert directory.authenticate(tampered) is None
    assert directory.authenticate("fik_0000000000000000_" + "a" * 43) is None
    assert directory.authenticate("not a key") is None


def test_secrets_are_not_stored(directory: TablePartnerDirectory) -> None:
    directory.upsert(Partner(id="hospital-a", name="Hospital A"))
    key = directory.issue_key("hospital-a")
    rows = list(wiring.storage().table_client(Table.PARTNERS).list_entities())
    assert rows and all(key.secret not in str(row) and key.token not in str(row) for row in rows)


def test_keys_only_for_known_partners(directory: TablePartnerDirectory) -> None:
    with pytest.raises(UnknownPartnerError):
        directory.issue_key("nobody")


def test_time_zone_and_code_systems_round_trip(directory: TablePartnerDirectory) -> None:
    partner = Partner(
        id="lab-c",
        name="Lab C",
        time_zone="Europe/Paris",
        code_systems={"99LAB": "http://lab-c.example.org/codes"},
        identifiers=frozenset({"http://hl7.org/fhir/sid/us-npi|1234567893"}),
    )
    directory.upsert(partner)
    assert directory.get("lab-c") == partner


def test_identifiers_are_system_bar_value() -> None:
    with pytest.raises(ValueError, match=r"identifiers are system\|value"):
        Partner(id="lab-e", name="Lab E", identifiers=frozenset({"1234567893"}))


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        Partner(id="lab-d", name="Lab D", time_zone="Mars/Olympus")


def test_principals_find_their_partner_and_follow_changes(directory: TablePartnerDirectory) -> None:
    lab = Partner(id="lab-b", name="Lab B", principals=frozenset({"app-1", "app-2"}))
    directory.upsert(lab)
    assert directory.by_principal("app-1") == lab
    directory.upsert(lab.model_copy(update={"principals": frozenset({"app-2"})}))
    assert directory.by_principal("app-1") is None  # removed from the partner: gone
    assert directory.by_principal("app-2") is not None
    assert directory.by_principal("app-9") is None
    with pytest.raises(PrincipalTakenError, match="lab-b"):  # one principal, one partner
        directory.upsert(Partner(id="other", name="Other", principals=frozenset({"app-2"})))
    assert directory.by_principal("app-2") == directory.get("lab-b")


def test_keys_are_listed_without_secrets_used_and_revoked(directory: TablePartnerDirectory) -> None:
    directory.upsert(Partner(id="hospital-a", name="Hospital A"))
    first, second = directory.issue_key("hospital-a"), directory.issue_key("hospital-a")
    assert [k.last_used for k in directory.api_keys("hospital-a")] == [None, None]
    assert directory.authenticate(first.token) is not None
    used = {k.key_id: k.last_used for k in directory.api_keys("hospital-a")}
    assert used[first.key_id] is not None and used[second.key_id] is None
    assert first.secret not in repr(directory.api_keys())
    assert directory.revoke_key(first.key_id)
    assert directory.authenticate(first.token) is None  # revoked for good
    assert directory.authenticate(second.token) is not None
    assert not directory.revoke_key("0" * 16)
    assert {k.key_id: k.revoked for k in directory.api_keys()} == {
        first.key_id: True,
        second.key_id: False,
    }
    assert [p.id for p in directory.list()] == ["hospital-a"]


def test_another_instance_sees_a_revocation_within_its_cache_time(
    directory: TablePartnerDirectory,
) -> None:
    """Instance B keeps the rows it read for 30 s: a revocation made by instance A (or the
    CLI) reaches B within that time, never later, and B reads nothing while it is fresh."""
    now = [1000.0]
    other = TablePartnerDirectory(
        wiring.storage().table_client(Table.PARTNERS), cache_seconds=30, clock=lambda: now[0]
    )
    directory.upsert(Partner(id="hospital-a", name="Hospital A", roles=frozenset({Role.INGEST})))
    key = directory.issue_key("hospital-a")
    assert other.authenticate(key.token) == directory.get("hospital-a")
    directory.revoke_key(key.key_id)
    assert directory.authenticate(key.token) is None  # at once where it was revoked
    now[0] += 29
    assert other.authenticate(key.token) is not None  # still within B's 30 s
    now[0] += 2
    assert other.authenticate(key.token) is None  # past them: refused
    # Rows found are kept; a partner that was absent is looked up again at once.
    assert other.get("clinic-c") is None
    directory.upsert(Partner(id="clinic-c", name="Clinic C"))
    assert other.get("clinic-c") is not None
    wiring.storage().table_client(Table.PARTNERS).delete_entity("partner", "clinic-c")
    assert other.get("clinic-c") is not None  # fresh in B's cache: no read
    now[0] += 31
    assert other.get("clinic-c") is None
