"""The record store on a real Azurite: versions, history, late arrivals, deletes, races."""

from __future__ import annotations

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


def _blobs(kind: str, ident: str) -> list[str]:
    """The version blobs of a resource (the index row holds its current version besides)."""
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
    # Version 1 went to its blob when version 2 took its place in the index row.
    assert _blobs("Observation", "o1") == ["Observation/o1/_history/1.json"]
    assert store.versions("Observation", "o1") == [1, 2]
    assert store.read_version("Observation", "o1", 1)["valueQuantity"]["value"] == 70  # type: ignore[index]
    assert _compartment("p1") == ["Observation|o1"]


def test_the_index_row_holds_the_current_version_and_a_large_one_goes_to_its_blob(
    store: BlobResourceStore,
) -> None:
    small = _put(store, _obs(70), T0, ("Patient/p1",))
    assert _blobs("Observation", "o1") == []
    held = store.stored("Observation", "o1", small.version)
    assert held is not None and held.resource["valueQuantity"]["value"] == 70
    assert (held.patients, held.source, held.event) == (("Patient/p1",), "lab", "created")
    note = [{"text": "x" * (61 * 1024)}]  # past what a table property takes
    large = _put(store, {**_obs(71), "note": note}, T0 + timedelta(hours=1), ("Patient/p1",))
    assert large.version == 2
    assert _blobs("Observation", "o1") == [
        "Observation/o1/_history/1.json",
        "Observation/o1/_history/2.json",
    ]
    current = store.current("Observation", "o1")
    assert current is not None and current.body is None
    read = store.stored("Observation", "o1", 2)
    assert read is not None and read.resource["note"] == note and read.event == "updated"
    back = _put(store, _obs(72), T0 + timedelta(hours=2), ("Patient/p1",))
    assert back.version == 3 and len(_blobs("Observation", "o1")) == 2  # held again
    assert store.versions("Observation", "o1") == [1, 2, 3]
    assert store.erase("Observation", "o1") == 3
    assert store.versions("Observation", "o1") == []


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
    assert store.versions("Observation", "o1") == [1, 2]
    assert _blobs("Observation", "o1") == ["Observation/o1/_history/2.json"]  # 1 is current


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
    marker = store.stored("Observation", "o1", 2)
    assert marker is not None and marker.event == "deleted"
    assert marker.resource == {
        "resourceType": "Observation",
        "id": "o1",
        "meta": marker.resource["meta"],
    }
    kept = (
        wiring.storage().container(Container.FHIR).get_blob_client("Observation/o1/_history/1.json")
    )
    assert kept.get_blob_properties().metadata["event"] == "created"


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
    versions = store.versions("Observation", "o1")
    assert len(_blobs("Observation", "o1")) == len(versions) - 1  # the current is in the row
    read = [store.read_version("Observation", "o1", v) for v in versions]
    values = sorted(r["valueQuantity"]["value"] for r in read if r is not None)
    assert values == list(range(1, 9))  # every write kept, none overwritten
    current = store.current("Observation", "o1")
    assert current is not None
    newest = store.read_version("Observation", "o1", current.version)
    assert newest is not None and newest["valueQuantity"]["value"] == 8


def test_a_retry_finishes_a_write_cut_short_between_row_and_blob(storage_env) -> None:  # type: ignore[no-untyped-def]
    """A version too large for the index row is claimed there first, then written."""

    class CrashOnce(BlobResourceStore):
        crashed = False

        def _put(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            if not CrashOnce.crashed:
                CrashOnce.crashed = True
                raise SystemExit("the worker died here")
            return super()._put(*args, **kwargs)

    clients = wiring.storage()
    provision_storage(clients)
    store = CrashOnce(
        clients.table_client(Table.RESOURCES),
        clients.table_client(Table.COMPARTMENTS),
        clients.container(Container.FHIR),
    )
    large = {**_obs(70), "note": [{"text": "x" * (61 * 1024)}]}
    with pytest.raises(SystemExit):
        _put(store, large, T0, ("Patient/p1",), correlation_id="ing-9")
    assert _blobs("Observation", "o1") == []  # the row claims version 1; no blob yet
    retried = _put(store, large, T0, ("Patient/p1",), correlation_id="ing-9")
    assert (retried.outcome, retried.version) == (WriteOutcome.UNCHANGED, 1)
    assert _blobs("Observation", "o1") == ["Observation/o1/_history/1.json"]
    assert store.read_version("Observation", "o1", 1) is not None
    assert _compartment("p1") == ["Observation|o1"]


def test_a_crash_before_a_new_version_takes_the_row_loses_nothing(storage_env) -> None:  # type: ignore[no-untyped-def]
    """The version the row holds goes to its blob before the row is replaced: a worker
    that dies in between leaves the old version current and in history, and its retry
    writes the new one."""

    class CrashOnce(BlobResourceStore):
        crashed = False

        def _claim(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            if args[0] is not None and not CrashOnce.crashed:
                CrashOnce.crashed = True
                raise SystemExit("the worker died here")
            return super()._claim(*args, **kwargs)

    clients = wiring.storage()
    provision_storage(clients)
    store = CrashOnce(
        clients.table_client(Table.RESOURCES),
        clients.table_client(Table.COMPARTMENTS),
        clients.container(Container.FHIR),
    )
    _put(store, _obs(70), T0, ("Patient/p1",), correlation_id="ing-1")
    with pytest.raises(SystemExit):
        _put(store, _obs(71), T0 + timedelta(hours=1), ("Patient/p1",), correlation_id="ing-2")
    assert _blobs("Observation", "o1") == ["Observation/o1/_history/1.json"]
    current = store.current("Observation", "o1")
    assert current is not None and current.version == 1
    retried = _put(
        store, _obs(71), T0 + timedelta(hours=1), ("Patient/p1",), correlation_id="ing-2"
    )
    assert (retried.outcome, retried.version) == (WriteOutcome.UPDATED, 2)
    assert [
        store.read_version("Observation", "o1", v)["valueQuantity"]["value"] for v in (1, 2)
    ] == [70, 71]  # type: ignore[index]


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
    assert store.versions("Observation", "o1") == [1]
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
