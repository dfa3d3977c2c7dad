"""The record store on a real Azurite: versions, history, late arrivals, deletes, races."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from shared import wiring
from shared.platform.names import Container, Table
from shared.platform.provision import provision_storage
from shared.records import Change, WriteOutcome
from shared.records.adapters import BlobResourceStore

pytestmark = pytest.mark.azurite
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _obs(value: int, patient: str = "p1") -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": value},
    }


@pytest.fixture
def store(storage_env) -> BlobResourceStore:  # type: ignore[no-untyped-def]
    provision_storage(wiring.storage())
    return wiring.record_store()


def _put(store: BlobResourceStore, *args, **kwargs) -> Change:  # type: ignore[no-untyped-def]
    """Store partner "lab"'s resource and list it in the compartment, as the store stage does."""
    change = store.put(*args, **{"source": "lab", **kwargs})
    store.list_in_compartments([change])
    return change


def _compartment(patient: str, marks: bool = False) -> list[str]:
    """A patient's compartment rows (``marks``: the ``~source|`` and other rows too)."""
    table = wiring.storage().table_client(Table.COMPARTMENTS)
    rows = table.query_entities("PartitionKey eq @p", parameters={"p": patient})
    return [r["RowKey"] for r in rows if marks or not r["RowKey"].startswith("~")]


def _history(kind: str, ident: str) -> list[str]:
    container = wiring.storage().container(Container.FHIR)
    return sorted(
        b.name for b in container.list_blobs(name_starts_with=f"{kind}/{ident}/_history/")
    )


def test_create_update_and_no_op(store: BlobResourceStore) -> None:
    first = _put(store, _obs(70), T0, ("Patient/p1",), correlation_id="ing-1")
    assert (first.outcome, first.version) == (WriteOutcome.CREATED, 1)
    again = _put(
        store, _obs(70), T0 + timedelta(minutes=5), ("Patient/p1",), correlation_id="ing-2"
    )
    assert (again.outcome, again.version, again.correlation_id) == (
        WriteOutcome.UNCHANGED,
        1,
        "ing-1",
    )
    second = _put(store, _obs(72), T0 + timedelta(minutes=10), ("Patient/p1",))
    assert (second.outcome, second.version) == (WriteOutcome.UPDATED, 2)
    stored = store.read_version("Observation", "o1", 2)
    assert stored is not None and stored["valueQuantity"]["value"] == 72
    assert stored["meta"]["versionId"] == "2" and stored["meta"]["lastUpdated"].endswith("Z")
    assert _history("Observation", "o1") == [
        "Observation/o1/_history/1.json",
        "Observation/o1/_history/2.json",
    ]
    assert _compartment("p1") == ["Observation|o1"]


def test_a_late_arrival_is_kept_in_history_without_replacing_the_newer(
    store: BlobResourceStore,
) -> None:
    _put(store, _obs(80), T0 + timedelta(hours=1), ("Patient/p1",))
    late = _put(store, _obs(60), T0, ("Patient/p1",))
    assert (late.outcome, late.version) == (WriteOutcome.OUT_OF_ORDER, 2)
    current = store.current("Observation", "o1")
    assert current is not None and current.version == 1
    assert store.read_version("Observation", "o1", 2)["valueQuantity"]["value"] == 60  # type: ignore[index]
    resent = _put(store, _obs(60), T0, ("Patient/p1",))
    assert resent.outcome is WriteOutcome.UNCHANGED  # the resend adds nothing
    assert len(_history("Observation", "o1")) == 2


def test_delete_leaves_history_and_empties_the_compartment(store: BlobResourceStore) -> None:
    _put(store, _obs(70), T0, ("Patient/p1",))
    gone = _put(
        store,
        {"resourceType": "Observation", "id": "o1"},
        T0 + timedelta(days=1),
        (),
        delete=True,
    )
    assert (gone.outcome, gone.version) == (WriteOutcome.DELETED, 2)
    current = store.current("Observation", "o1")
    assert current is not None and current.deleted
    assert _compartment("p1") == []
    marker = wiring.storage().container(Container.FHIR).get_blob_client(gone.blob)
    assert marker.get_blob_properties().metadata["event"] == "deleted"


def test_moving_to_another_patient_moves_the_compartment_row(store: BlobResourceStore) -> None:
    _put(store, _obs(70, "p1"), T0, ("Patient/p1",))
    _put(store, _obs(70, "p2"), T0 + timedelta(minutes=1), ("Patient/p2",))
    assert (_compartment("p1"), _compartment("p2")) == ([], ["Observation|o1"])


def test_concurrent_writers_get_distinct_versions_and_the_newest_source_wins(
    store: BlobResourceStore,
) -> None:
    errors: list[BaseException] = []

    def write(value: int) -> None:
        try:
            _put(store, _obs(value), T0 + timedelta(minutes=value), ("Patient/p1",))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(v,)) for v in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    names = _history("Observation", "o1")
    values = sorted(
        json.loads(wiring.storage().container(Container.FHIR).download_blob(n).readall())[
            "valueQuantity"
        ]["value"]
        for n in names
    )
    assert values == list(range(1, 9))  # every write kept, none overwritten
    current = store.current("Observation", "o1")
    assert current is not None
    newest = store.read_version("Observation", "o1", current.version)
    assert newest is not None and newest["valueQuantity"]["value"] == 8


def test_a_retry_finishes_a_write_cut_short_between_row_and_blob(storage_env) -> None:  # type: ignore[no-untyped-def]
    class CrashOnce(BlobResourceStore):
        crashed = False

        def _upload(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            if not CrashOnce.crashed:
                CrashOnce.crashed = True
                raise SystemExit("the worker died here")
            return super()._upload(*args, **kwargs)

    clients = wiring.storage()
    provision_storage(clients)
    store = CrashOnce(
        clients.table_client(Table.RESOURCES),
        clients.table_client(Table.COMPARTMENTS),
        clients.container(Container.FHIR),
    )
    with pytest.raises(SystemExit):
        _put(store, _obs(70), T0, ("Patient/p1",), correlation_id="ing-9")
    assert _history("Observation", "o1") == []  # the row claims version 1; no blob yet
    retried = _put(store, _obs(70), T0, ("Patient/p1",), correlation_id="ing-9")
    assert (retried.outcome, retried.version) == (WriteOutcome.UNCHANGED, 1)
    assert _history("Observation", "o1") == ["Observation/o1/_history/1.json"]
    assert _compartment("p1") == ["Observation|o1"]


def test_every_version_is_its_senders_and_another_partners_write_is_refused(
    store: BlobResourceStore,
) -> None:
    first = _put(store, _obs(70), T0, ("Patient/p1",), correlation_id="ing-1")
    assert _compartment("p1", marks=True) == ["Observation|o1", "~source|lab"]
    stored = store.stored("Observation", "o1", first.version)
    assert stored is not None and (stored.patients, stored.source) == (("Patient/p1",), "lab")
    current = store.current("Observation", "o1")
    assert current is not None and current.source == "lab"
    # Another partner writing the same type and id (only a converter bug could): refused,
    # and nothing of the lab's resource changes.
    foreign = _put(
        store, _obs(99), T0 + timedelta(days=1), ("Patient/p1",), source="evil", correlation_id="x"
    )
    assert foreign.outcome is WriteOutcome.FOREIGN and foreign.compartments == ()
    assert store.current("Observation", "o1") == current
    assert _history("Observation", "o1") == ["Observation/o1/_history/1.json"]
    # A resource of no patient says so in its blob (the history then knows, per version).
    org = store.put({"resourceType": "Organization", "id": "lab"}, T0, (), source="lab")
    assert store.stored("Organization", "lab", org.version).patients == ()  # type: ignore[union-attr]


def test_a_type_that_mostly_exists_is_read_first_and_one_mostly_new_is_created_at_once(
    storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted through the bench-ops proxy: new Observations cost no read before their
    create; the Practitioner every message names stops costing a refused create."""
    from bench.ops_proxy import CountingProxy
    from shared.platform.settings import development_connection_string

    blob = storage_env["AzureWebJobsStorage"].split("BlobEndpoint=http://127.0.0.1:")[1]
    port = int(blob.split("/")[0])
    provision_storage(wiring.storage())
    with CountingProxy((port, port + 1, port + 2), storage_env["INTAKE_STORAGE_PREFIX"]) as proxy:
        through = development_connection_string(blob_port=proxy.ports[0])
        monkeypatch.setenv("AzureWebJobsStorage", through)
        wiring.reset_caches()
        store = wiring.record_store()
        doctor = {"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "Ng"}]}
        store.put(doctor, T0, (), correlation_id="ing-0", source="lab")
        proxy.take()
        for n in range(1, 13):
            later = T0 + timedelta(minutes=n)
            store.put(doctor, later, (), correlation_id=f"ing-{n}", source="lab")
            obs = {**_obs(n), "id": f"o{n}"}
            store.put(obs, T0, ("Patient/p1",), correlation_id=f"ing-{n}", source="lab")
        counted = proxy.take()
    refused = [r for r in counted if r.target == "resources" and r.status == 409]
    assert 0 < len(refused) <= 4  # learnt within a few messages, then never again
    late = counted[len(counted) // 2 :]
    assert not [r for r in late if r.status == 409]
    reads_before_create = [
        r for r in late if r.target == "resources" and r.operation == "get" and r.status == 404
    ]
    assert reads_before_create == []  # the Observations are still created unread
