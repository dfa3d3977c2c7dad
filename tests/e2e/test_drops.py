"""Batch files dropped into ingest-drop, through the emulated Event Grid event, the
blob-created queue trigger and the normalize stage, on the local host and Azurite.

Partner p1 is a direct-drop partner here (``INTAKE_DIRECT_DROP_PARTNERS``), so the
splitting tests write its folder straight away; hosp-a and hosp-b are not, and upload
through ``POST /api/ingest/uploads`` and the URL it answers, as partners do.
"""

from __future__ import annotations

import gzip
import json
import signal
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.pipeline.journey import TableIngestionLog
from shared.platform.adapters import BlobAuditLog
from shared.platform.names import Container, Table
from shared.platform.provision import provision_storage
from shared.platform.storage import StorageClients
from shared.security import Partner, Role, TablePartnerDirectory
from tests.e2e.conftest import APPS, clients_for, make_env
from tests.support.hostproc import REPO, HostProcess, wait_for, write_settings

pytestmark = pytest.mark.azurite
RATIO = 50  # INTAKE_DROP_MAX_INFLATE_RATIO in the module's host (the default is 100)


def _host(tmp: Any, env: dict[str, str]) -> HostProcess:
    return HostProcess(
        root=REPO,
        app="function_app:app",
        env=env,
        log_path=tmp / "host.log",
        host_json=APPS / "host.json",
        settings=write_settings(tmp / "s.json", "k", "m"),
    )


def _setup(azurite: str, **extra: str) -> tuple[dict[str, str], StorageClients]:
    env = {
        **make_env(azurite),
        "DEVHOST_QUEUE_LEASE_SECONDS": "4",
        "INTAKE_DIRECT_DROP_PARTNERS": "p1",
        **extra,
    }
    clients = clients_for(env)
    provision_storage(clients)
    TablePartnerDirectory(clients.table_client(Table.PARTNERS)).upsert(Partner(id="p1", name="One"))
    return env, clients


def _patients(n: int, start: int = 0) -> bytes:
    return "".join(
        json.dumps({"resourceType": "Patient", "id": f"pat-{i}", "gender": "female"}) + "\n"
        for i in range(start, start + n)
    ).encode()


def _report(clients: StorageClients, path: str) -> dict[str, Any] | None:
    try:
        return json.loads(clients.container(Container.REPORTS).download_blob(path).readall())
    except ResourceNotFoundError:
        return None


def _normalized_patients(clients: StorageClients) -> list[str]:
    ids = []
    container = clients.container(Container.NORMALIZED)
    for blob in container.list_blobs(name_starts_with="p1/"):
        if blob.name.endswith(".permitted.json"):  # consent-check's output, not normalize's
            continue
        bundle = json.loads(container.download_blob(blob.name).readall())
        ids += [
            e["resource"]["id"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Patient"
        ]
    return ids


@pytest.fixture(scope="module")
def running(
    azurite: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HostProcess, StorageClients]]:
    env, clients = _setup(
        azurite, INTAKE_DROP_CHUNK_RECORDS="10", INTAKE_DROP_MAX_INFLATE_RATIO=str(RATIO)
    )
    host = _host(tmp_path_factory.mktemp("drops"), env).start()
    yield host, clients
    assert host.stop() == 0, host.logs()


def test_gzip_ndjson_drop_is_split_normalized_and_reported(running) -> None:  # type: ignore[no-untyped-def]
    _, clients = running
    data = _patients(25) + b'{"resourceType": "Patient", "gender": "F"}\n{"broken": \n'
    clients.container(Container.INGEST_DROP).upload_blob(
        "p1/batches/day1.ndjson.gz", gzip.compress(data)
    )
    report = wait_for(
        lambda: _report(clients, "p1/batches/day1.ndjson.gz.report.json"), what="report"
    )
    assert (report["format"], report["records"], report["chunks"]) == ("fhir", 26, 3)
    # the line that is not JSON is in the report by its number; the rest went on
    assert report["status"] == "partial"
    assert [r["location"] for r in report["rejected"]] == ["line 27"]
    assert len(report["ingestions"]) == 3
    tags = (
        clients.container(Container.INGEST_DROP)
        .get_blob_client("p1/batches/day1.ndjson.gz")
        .get_blob_tags()
    )
    assert tags == {"intake": "partial"}
    # every good record reaches the normalized store; the bad one is quarantined by normalize
    wait_for(lambda: len(_normalized_patients(clients)) == 25, what="25 normalized patients")
    held = [
        b.name for b in clients.container(Container.QUARANTINE).list_blobs(name_starts_with="p1/")
    ]
    assert len(held) == 1


def test_hl7_batch_and_csv_drops(running) -> None:  # type: ignore[no-untyped-def]
    _, clients = running
    msh = "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|{n}|P|2.5.1\rPID|1||M{n}^^^H^MR||Doe^J{n}\r"
    batch = (
        "FHS|^~\\&\rBHS|^~\\&\r" + "".join(msh.format(n=i) for i in range(12)) + "BTS|12\rFTS|1\r"
    )
    drop = clients.container(Container.INGEST_DROP)
    drop.upload_blob("p1/adt/batch.hl7", batch.encode())
    report = wait_for(lambda: _report(clients, "p1/adt/batch.hl7.report.json"), what="hl7 report")
    assert (report["format"], report["records"], report["chunks"]) == ("hl7v2", 12, 2)
    csv_file = (REPO / "docs" / "samples" / "lab-results.csv").read_bytes()
    drop.upload_blob("p1/labs/2026-03-01.csv", csv_file, metadata={"mapping": "lab-results"})
    report = wait_for(
        lambda: _report(clients, "p1/labs/2026-03-01.csv.report.json"), what="csv report"
    )
    assert (report["format"], report["records"], report["status"]) == ("csv", 4, "processed")
    no_mapping = drop.upload_blob("p1/labs/unmapped.csv", csv_file)
    report = wait_for(
        lambda: _report(clients, "p1/labs/unmapped.csv.report.json"), what="rejection report"
    )
    assert report["status"] == "rejected" and "mapping" in json.dumps(report["rejected"])
    assert no_mapping.get_blob_tags() == {"intake": "rejected"}


def test_a_drop_outside_a_partner_folder_is_held(running) -> None:  # type: ignore[no-untyped-def]
    _, clients = running
    clients.container(Container.INGEST_DROP).upload_blob("stranger/file.ndjson", _patients(1))

    def held() -> dict[str, Any] | None:
        try:
            blob = clients.container(Container.QUARANTINE).download_blob(
                "drops/stranger/file.ndjson.report.json"
            )
        except ResourceNotFoundError:
            return None
        return json.loads(blob.readall())

    report = wait_for(held, what="quarantine report")
    assert report["status"] == "rejected" and report["records"] == 0


def test_killing_the_worker_mid_file_loses_nothing_and_duplicates_nothing(
    azurite: str, tmp_path: Any
) -> None:
    # The test reads what normalize wrote: the stages after it would only take the CPU
    # (under load on 2 cores this test ran into its time-out with them on).
    after_normalize = {
        f"AzureWebJobs.{name}.Disabled": "true"
        for name in ("consent_check", "store", "notify", "deliver")
    }
    env, clients = _setup(azurite, INTAKE_DROP_CHUNK_RECORDS="20", **after_normalize)
    host = _host(tmp_path, env).start()
    clients.container(Container.INGEST_DROP).upload_blob("p1/big.ndjson", _patients(3000))
    checkpoints = clients.table_client(Table.CHECKPOINTS)

    def midway() -> bool:
        rows = list(checkpoints.list_entities())
        return bool(rows) and rows[0].get("chunks", 0) > 0 and not rows[0].get("done")

    wait_for(midway, interval=0.05, what="a checkpoint mid-file")
    host.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    host.process.wait(10)  # type: ignore[union-attr]
    killed_at = next(iter(checkpoints.list_entities()))["chunks"]
    assert killed_at < 150
    host.start()  # the event's message comes back when its lease ends; work resumes
    try:
        report = wait_for(
            lambda: _report(clients, "p1/big.ndjson.report.json"),
            timeout=120,
            what="the report after restart",
        )
        assert report["records"] == 3000 and report["chunks"] == 150
        assert report["resumed_from_chunk"] >= killed_at
        chunks = list(clients.container(Container.RAW).list_blobs(name_starts_with="p1/drops/"))
        assert len(chunks) == 150
        ids = wait_for(
            lambda: (found := _normalized_patients(clients)) and len(found) >= 3000 and found,
            timeout=120,
            what="all records normalized",
        )
        assert len(ids) == len(set(ids)) == 3000  # none lost, none twice
    finally:
        assert host.stop() == 0, host.logs()


def test_a_bundle_document_drop(running) -> None:  # type: ignore[no-untyped-def]
    _, clients = running
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
                "resource": {"resourceType": "Patient", "id": "bundled", "gender": "other"},
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    clients.container(Container.INGEST_DROP).upload_blob(
        "p1/docs/bundle.json", json.dumps(bundle, indent=2).encode()
    )
    report = wait_for(
        lambda: _report(clients, "p1/docs/bundle.json.report.json"), what="bundle report"
    )
    assert (report["format"], report["records"], report["status"]) == ("fhir", 1, "processed")


@pytest.fixture(scope="module")
def partners(running) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Two ingest partners with API keys on the module's host, and a client for its API."""
    host, clients = running
    directory = TablePartnerDirectory(clients.table_client(Table.PARTNERS))
    keys = {}
    for name in ("hosp-a", "hosp-b"):
        directory.upsert(Partner(id=name, name=name, roles=frozenset({Role.INGEST})))
        keys[name] = directory.issue_key(name).token
    with httpx.Client(
        base_url=f"{host.base_url}/api", headers={"x-functions-key": "k"}, timeout=30
    ) as client:
        yield {"client": client, "keys": keys, "clients": clients}


def _issue(partners: dict[str, Any], partner: str, filename: str) -> dict[str, Any]:
    answer = partners["client"].post(
        "/ingest/uploads",
        json={"filename": filename},
        headers={"x-api-key": partners["keys"][partner]},
    )
    assert answer.status_code == 201, answer.text
    issued: dict[str, Any] = answer.json()
    return issued


def _put(url: str, data: bytes) -> httpx.Response:
    """A plain HTTP PUT with the SAS URL: no SDK, no storage credential."""
    return httpx.put(
        url,
        content=data,
        headers={"x-ms-blob-type": "BlockBlob", "content-type": "application/x-ndjson"},
    )


def _gzip_runs(head: bytes, byte: bytes, mib: int) -> bytes:
    """``head``, then ``mib`` MiB of one byte on one line, gzipped at level 9 a MiB at a time
    (the security review's bomb is 400 MiB of 'a': 407,698 bytes)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [packer.compress(head)]
    out += [packer.compress(byte * (1 << 20)) for _ in range(mib)]
    return b"".join(out) + packer.flush()


def _held(clients: StorageClients, name: str) -> dict[str, Any] | None:
    try:
        blob = clients.container(Container.QUARANTINE).download_blob(f"drops/{name}.report.json")
    except ResourceNotFoundError:
        return None
    return json.loads(blob.readall())


def _audited(clients: StorageClients, subtype: str) -> list[dict[str, Any]]:
    trail = BlobAuditLog(clients)
    today = datetime.now(UTC).date()
    return [
        event
        for day in (today - timedelta(days=1), today)
        for event in trail.events_on(day)
        if event["subtype"][0]["code"] == subtype
    ]


def test_a_partner_uploads_with_its_url_and_the_file_is_processed_as_its(partners) -> None:  # type: ignore[no-untyped-def]
    clients: StorageClients = partners["clients"]
    issued = _issue(partners, "hosp-a", "../exports/Day 1.ndjson")
    # the name is ours, under the caller's folder; the partner's suggestion only sanitized
    assert issued["blob"] == f"hosp-a/uploads/{issued['id']}/Day_1.ndjson"
    sas = parse_qs(urlsplit(issued["url"]).query)
    assert (sas["sp"], sas["sr"]) == (["cw"], ["b"])  # create and write one blob, no read/list
    assert datetime.fromisoformat(sas["se"][0]) == datetime.fromisoformat(
        issued["expires"]
    ).replace(microsecond=0)
    assert _put(issued["url"], _patients(3, start=100)).status_code == 201
    report = wait_for(
        lambda: _report(clients, f"{issued['blob']}.report.json"), what="the upload's report"
    )
    assert (report["partner"], report["status"], report["records"]) == ("hosp-a", "processed", 3)
    journey = TableIngestionLog(clients.table_client(Table.INGESTIONS)).get(
        "hosp-a", report["ingestions"][0]
    )
    assert journey is not None and journey["received_status"] == "stored"
    [event] = [
        e
        for e in _audited(clients, "upload-issue")
        if e["entity"][0]["what"]["identifier"]["value"] == issued["id"]
    ]
    assert event["agent"][0]["who"]["identifier"]["value"] == "hosp-a"


def test_an_upload_url_writes_its_one_blob_and_nothing_else(partners) -> None:  # type: ignore[no-untyped-def]
    clients: StorageClients = partners["clients"]
    issued = _issue(partners, "hosp-a", "mine.ndjson")
    base, _, token = issued["url"].partition("?")
    elsewhere = [
        base.replace("/mine.ndjson", "/other.ndjson"),  # another file of the same upload
        base.replace("/hosp-a/", "/hosp-b/"),  # the same upload id in another partner's folder
        base.rsplit("/uploads/", 1)[0] + "/direct.ndjson",
    ]
    for url in elsewhere:
        answer = _put(f"{url}?{token}", _patients(1))
        assert answer.status_code == 403, (url, answer.status_code)
    assert _put(issued["url"], _patients(1)).status_code == 201
    assert httpx.get(issued["url"]).status_code == 403  # no read
    assert httpx.delete(issued["url"]).status_code == 403  # no delete
    container = base.rsplit("/hosp-a/", 1)[0]
    listing = httpx.get(f"{container}?restype=container&comp=list&{token}")
    assert listing.status_code == 403  # no list
    drop = clients.container(Container.INGEST_DROP)
    names = {b.name for b in drop.list_blobs(name_starts_with="hosp-")}
    assert issued["blob"] in names and not names & {
        n.split(drop.container_name + "/", 1)[1] for n in elsewhere
    }
    # it can create a page blob (terabytes of zeros cost its writer nothing): never read
    paged = _issue(partners, "hosp-a", "paged.ndjson")
    created = httpx.put(
        paged["url"],
        headers={"x-ms-blob-type": "PageBlob", "x-ms-blob-content-length": str(1 << 20)},
    )
    assert created.status_code == 201
    report = wait_for(lambda: _held(clients, paged["blob"]), what="the page blob's refusal")
    assert report["rejected"][0]["outcome"]["issue"][0]["diagnostics"] == (
        "only block blobs are taken"
    )
    assert _report(clients, f"{paged['blob']}.report.json") is None


def test_a_file_written_straight_into_a_partner_folder_is_refused_and_reported(partners) -> None:  # type: ignore[no-untyped-def]
    clients: StorageClients = partners["clients"]
    drop = clients.container(Container.INGEST_DROP)
    # MEDIUM-4: anyone able to write the container chooses a folder...
    drop.upload_blob("hosp-b/written-by-someone-else.ndjson", _patients(1, start=200))
    # ...or copies the shape of an upload hosp-a was issued, into hosp-b's folder or
    # under another file name
    issued = _issue(partners, "hosp-a", "issued.ndjson")
    upload_id = issued["id"]
    drop.upload_blob(f"hosp-b/uploads/{upload_id}/issued.ndjson", _patients(1, start=201))
    drop.upload_blob(f"hosp-a/uploads/{upload_id}/not-issued.ndjson", _patients(1, start=202))
    reasons = {
        name: wait_for(lambda name=name: _held(clients, name), what=f"refusal of {name}")
        for name in (
            "hosp-b/written-by-someone-else.ndjson",
            f"hosp-b/uploads/{upload_id}/issued.ndjson",
            f"hosp-a/uploads/{upload_id}/not-issued.ndjson",
        )
    }
    for name, report in reasons.items():
        assert (report["status"], report["records"], report["chunks"]) == ("rejected", 0, 0), name
        assert _report(clients, f"{name}.report.json") is None  # never processed as anyone's
    diagnostics = [r["rejected"][0]["outcome"]["issue"][0]["diagnostics"] for r in reasons.values()]
    assert diagnostics == [
        "the file is not an issued upload (POST /api/ingest/uploads)",
        "no upload of this name was issued to this folder's partner",
        "no upload of this name was issued to this folder's partner",
    ]
    assert not list(
        clients.table_client(Table.INGESTIONS).query_entities("PartitionKey eq 'hosp-b'")
    )

    def refusals() -> list[dict[str, Any]]:  # of these files (not the page blob before)
        return [
            e
            for e in _audited(clients, "drop-refused")
            if e["entity"][0]["detail"][0]["valueString"] in diagnostics
        ]

    refused = wait_for(lambda: len(refusals()) >= 3 and refusals(), what="three AuditEvents")
    by_partner = sorted(e["agent"][1]["who"]["identifier"]["value"] for e in refused)
    assert by_partner == ["hosp-a", "hosp-b", "hosp-b"]
    assert {
        (e["outcome"], e["agent"][0]["requestor"], e["agent"][1]["requestor"]) for e in refused
    } == {("4", True, False)}


def _unwritten(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """A report without the time it was written (the quarantined copy is written first)."""
    return report and {k: v for k, v in report.items() if k != "written"}


def _issues(report: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["location"], r["outcome"]["issue"][0]["code"]) for r in report["rejected"]]


def test_a_gzip_bomb_is_stopped_reported_and_quarantined_once(running) -> None:  # type: ignore[no-untyped-def]
    _, clients = running
    checkpoints = clients.table_client(Table.CHECKPOINTS)
    before = {row["RowKey"] for row in checkpoints.list_entities()}
    bomb = _gzip_runs(b"", b"a", 400)
    drop = clients.container(Container.INGEST_DROP).upload_blob("p1/evil/bomb.ndjson.gz", bomb)
    report = wait_for(
        lambda: _report(clients, "p1/evil/bomb.ndjson.gz.report.json"), what="bomb report"
    )
    # stopped at INTAKE_DROP_MAX_INFLATE_RATIO times its size: 20 MB, not 400 MiB
    assert (report["status"], report["records"], report["chunks"]) == ("rejected", 0, 0)
    assert _issues(report) == [("file", "too-costly")]
    diagnostics = report["rejected"][0]["outcome"]["issue"][0]["diagnostics"]
    assert f"past {RATIO * len(bomb)} bytes (INTAKE_DROP_MAX_INFLATE_RATIO" in diagnostics
    assert _unwritten(_held(clients, "p1/evil/bomb.ndjson.gz")) == _unwritten(report)
    assert drop.get_blob_tags() == {"intake": "rejected"}
    # done with, so a redelivered event finds it done instead of reading it again
    [row] = [row for row in checkpoints.list_entities() if row["RowKey"] not in before]
    assert (row["PartitionKey"], row["done"]) == ("p1", True)


def test_a_gzip_file_past_its_limit_keeps_the_chunks_sent_before(running) -> None:  # type: ignore[no-untyped-def]
    _, clients = running
    # 30 Patients (3 chunks of 10), then a line of 100 MiB that inflates past the ratio
    data = _gzip_runs(_patients(30, start=500), b"a", 100)
    clients.container(Container.INGEST_DROP).upload_blob("p1/evil/late.ndjson.gz", data)
    report = wait_for(
        lambda: _report(clients, "p1/evil/late.ndjson.gz.report.json"), what="late report"
    )
    assert (report["status"], report["records"], report["chunks"]) == ("partial", 30, 3)
    assert _issues(report) == [("file", "too-costly")]
    assert _unwritten(_held(clients, "p1/evil/late.ndjson.gz")) == _unwritten(report)
    raw = clients.container(Container.RAW).list_blobs(
        name_starts_with="p1/drops/", include=["metadata"]
    )
    sent = [blob.metadata["ingestion_id"] for blob in raw]
    assert sorted(i for i in sent if i in report["ingestions"]) == sorted(report["ingestions"])


def test_a_40_mib_line_is_reported_by_its_number_and_the_next_goes_on(running) -> None:  # type: ignore[no-untyped-def]
    _, clients = running
    line = json.dumps({"resourceType": "Binary", "data": "a" * (40 << 20)}).encode()
    clients.container(Container.INGEST_DROP).upload_blob(
        "p1/big/one-line.ndjson", line + b"\n" + _patients(1, start=900)
    )
    report = wait_for(
        lambda: _report(clients, "p1/big/one-line.ndjson.report.json"), what="one-line report"
    )
    # over INTAKE_DROP_MAX_RECORD_BYTES (16 MiB by default): that line only
    assert (report["status"], report["records"], report["chunks"]) == ("partial", 1, 1)
    assert _issues(report) == [("line 1", "too-long")]
    assert "aaaa" not in json.dumps(report)
    assert _held(clients, "p1/big/one-line.ndjson") is None
