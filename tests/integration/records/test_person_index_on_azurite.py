"""The person index on a real Azurite: identifiers with their partners (never their
values in a key), links on both Patients once, relationships, unlinks, and erasure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared import wiring
from shared.platform.names import Table
from shared.platform.provision import provision_storage
from shared.records.adapters.blob_store import source_row
from shared.records.people import Link, identifier_hash

pytestmark = pytest.mark.azurite
NOW = datetime(2026, 12, 1, tzinfo=UTC)
MRN = ("urn:oid:2.16.840.1.113883.3.999", "ZZCANARY-MRN-55")


def test_identifiers_links_relationships_and_erasure(storage_env) -> None:  # type: ignore[no-untyped-def]
    provision_storage(wiring.storage())
    index = wiring.person_index()
    patient = {
        "resourceType": "Patient",
        "id": "pa",
        "identifier": [dict(zip(("system", "value"), MRN, strict=True))],
    }
    index.index_identifiers(patient, "hosp-a")
    index.index_identifiers({**patient, "id": "pb"}, "clinic-a2")
    assert [(h.patient_id, h.partner) for h in index.holders(*MRN)] == [
        ("pa", "hosp-a"),
        ("pb", "clinic-a2"),
    ]
    rows = list(wiring.storage().table_client(Table.IDENTIFIERS).list_entities())
    assert rows and all(MRN[1] not in str(dict(r)) for r in rows)  # PHI never in the table

    link = Link("pa", "pb", MRN[0], identifier_hash(*MRN), ("hosp-a", "clinic-a2"))
    assert index.add_link(link, NOW, "ing-1") is True
    assert index.add_link(link, NOW, "ing-2") is False  # there already: audited once
    wiring.storage().table_client(Table.COMPARTMENTS).upsert_entity(source_row("pa", "hosp-a"))
    index.relate("pa", "reader-c", NOW)
    index.unlink("pa", "pz")
    mine, theirs = index.rows("pa"), index.rows("pb")
    assert [(x.other_id, x.system, x.key) for x in mine.links] == [("pb", MRN[0], link.key)]
    assert [x.other_id for x in theirs.links] == ["pa"] and set(theirs.links[0].partners) == {
        "hosp-a",
        "clinic-a2",
    }
    assert (mine.related, mine.sources, mine.unlinked) == ({"reader-c"}, {"hosp-a"}, {"pz"})
    assert index.unrelate("pa", "reader-c") and not index.unrelate("pa", "reader-c")

    index.forget("pa", [MRN])  # erasure: the other sides and the identifier rows go
    assert index.rows("pb").links == () and index.rows("pz").unlinked == frozenset()
    assert [h.patient_id for h in index.holders(*MRN)] == ["pb"]
