"""Partner submissions over HTTP through the local host on Azurite: stored before the
202, normalized after, idempotent, and refused with clear 4xx answers."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.platform.names import Container, Table
from shared.platform.storage import StorageClients
from shared.security import Partner, Role, UnmappedTypes
from tests.e2e.conftest import product_api
from tests.support.hostproc import REPO, HostProcess, wait_for

pytestmark = pytest.mark.azurite

ORU = (
    "MSH|^~\\&|LAB|ACME|EHR|HOSP|20260301101500||ORU^R01^ORU_R01|CTRL-77|P|2.5.1\r"
    "PID|1||MRN77^^^HOSP^MR||Doe^Jane||19700101|F\r"
    "OBX|1|NM|8867-4^Heart rate^LN||72|/min^^UCUM|||||F|||202603010800\r"
)
FUNCTION_KEY = "fk-ingest-tests"


@pytest.fixture(scope="module")
def api(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    partners = [
        Partner(id="p1", name="One", time_zone="America/New_York"),
        Partner(id="p2", name="Two"),
        Partner(id="reader", name="Reader", roles=frozenset({Role.READ})),
        Partner(id="keeper", name="Keeps unmapped types", unmapped_types=UnmappedTypes.STORE),
    ]
    limits = {
        "INTAKE_HTTP_MAX_BYTES": "4096",
        "INTAKE_MAX_DECOMPRESSED_BYTES": "65536",
        "AzureWebJobs.deliver.Disabled": "true",  # the replay test parks bodies on deliver
    }
    with product_api(
        azurite, tmp_path_factory.mktemp("ingest"), partners, FUNCTION_KEY, limits
    ) as api:
        yield api


def _post(
    api: dict[str, Any], body: bytes, content_type: str, partner: str = "p1", **headers: str
) -> httpx.Response:
    return api["client"].post(
        "/ingest",
        content=body,
        headers={"content-type": content_type, "x-api-key": api["keys"][partner], **headers},
    )


def test_hl7_is_stored_then_normalized_and_the_journey_is_visible(api: dict[str, Any]) -> None:
    response = _post(api, ORU.encode(), "x-application/hl7-v2+er7")
    assert response.status_code == 202, response.text
    ingestion = response.json()["id"]
    assert response.headers["location"] == f"/api/ingest/{ingestion}"
    clients: StorageClients = api["clients"]
    raw = [b for b in clients.container(Container.RAW).list_blobs(name_starts_with="p1/")]
    assert raw  # stored before the 202

    def normalized() -> dict[str, Any] | None:
        journey = (
            api["client"]
            .get(f"/ingest/{ingestion}", headers={"x-api-key": api["keys"]["p1"]})
            .json()
        )
        stages = {s["stage"]: s for s in journey["stages"]}
        return stages if stages.get("normalize", {}).get("status") else None

    stages = wait_for(normalized, what="normalize stage")
    assert stages["received"]["status"] == "stored"
    assert stages["normalize"]["status"] == "normalized"
    assert stages["normalize"]["resources"] >= 3


def test_hl7_without_a_partner_zone_takes_msh7s_offset_and_reports_what_it_leaves_out(
    api: dict[str, Any],
) -> None:
    # p2 has no time zone: PV1-44 without an offset is read at MSH-7's -0500, and PID-12
    # (county), which no converter reads, is listed on the journey by position.
    pid = "|".join(["PID", "1", "", "MRN90^^^HOSP^MR", "", "Roe^Al", *[""] * 6, "C-77"])
    pv1 = "PV1|1|I" + "|" * 42 + "202603010830"
    body = (
        f"MSH|^~\\&|LAB|ACME|EHR|HOSP|20260301101500-0500||ADT^A01|CTRL-95|P|2.5.1\r{pid}\r{pv1}\r"
    )
    ingestion = _post(api, body.encode(), "x-application/hl7-v2+er7", partner="p2").json()["id"]

    def normalized() -> dict[str, Any] | None:
        journey = (
            api["client"]
            .get(f"/ingest/{ingestion}", headers={"x-api-key": api["keys"]["p2"]})
            .json()
        )
        stages = {s["stage"]: s for s in journey["stages"]}
        return stages["normalize"] if stages.get("normalize", {}).get("status") else None

    stage = wait_for(normalized, what="normalize stage")
    assert stage["status"] == "normalized"
    issues = {i.get("location", [None])[0]: i["diagnostics"] for i in stage["issues"]}
    assert issues["PID"] == "values this conversion does not carry: PID-12"
    assert "MSH-7" not in issues  # an offset was there to read
    assert "C-77" not in json.dumps(stage)  # positions, never values
    container = api["clients"].container(Container.NORMALIZED)
    bundles = [
        json.loads(container.download_blob(b.name).readall())
        for b in container.list_blobs(name_starts_with="p2/")
    ]
    (encounter,) = [
        e["resource"]
        for bundle in bundles
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Encounter"
        and e["resource"]["subject"]["reference"].startswith("Patient/")
        and any("CTRL-95" in json.dumps(x) for x in bundle["entry"])
    ]
    assert encounter["period"]["start"] == "2026-03-01T08:30:00-05:00"


def test_an_oru_carries_its_specimen_ordering_facility_and_race_through_the_pipeline(
    api: dict[str, Any],
) -> None:
    # Issue 19: SPM-2.2/12/18, ORC-21 and PID-10 were lost; here they travel from the HTTP
    # trigger through the normalize queue to the stored Bundle on Azurite.
    pid = "PID|1||MRN91^^^HOSP^MR||Poe^Ed||19700101|M||2106-3^White^CDCREC"
    orc = "|".join(["ORC", "RE", "PL-91", "", *[""] * 17, "Good Clinic^^^^^^^^^GC-1"])
    spm = "SPM|1|PL-9&LAB^FI-9&LAB||119297000^Blood^SCT" + "|" * 8 + "5^mL&mL&UCUM"
    spm += "|" * 6 + "202603011000-0500"
    body = (
        "MSH|^~\\&|LAB|ACME|EHR|HOSP|20260301101500-0500||ORU^R01|CTRL-96|P|2.5.1\r"
        f"{pid}\r{orc}\rOBR|1|PL-91||24323-8^Panel^LN\r"
        "OBX|1|NM|2345-7^Glucose^LN||5.1|mmol/L^^UCUM|||||F\r"
        f"{spm}\r"
    )
    ingestion = _post(api, body.encode(), "x-application/hl7-v2+er7", partner="p2").json()["id"]
    container = api["clients"].container(Container.NORMALIZED)

    def stored() -> dict[str, Any] | None:
        for blob in container.list_blobs(name_starts_with="p2/"):
            if blob.name.endswith(f"{ingestion}.json"):
                return json.loads(container.download_blob(blob.name).readall())
        return None

    bundle = wait_for(stored, what="normalized bundle")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    (sample,) = by_type["Specimen"]
    assert [i["value"] for i in sample["identifier"]] == ["PL-9", "FI-9"]
    assert sample["collection"]["quantity"]["code"] == "mL"
    assert sample["receivedTime"] == "2026-03-01T10:00:00-05:00"
    (role,) = by_type["PractitionerRole"]
    (order,) = by_type["ServiceRequest"]
    assert order["requester"] == {"reference": f"PractitionerRole/{role['id']}"}
    (patient,) = by_type["Patient"]
    (race,) = patient["extension"]
    assert race["url"].endswith("us-core-race")
    assert race["extension"][0]["valueCoding"]["code"] == "2106-3"


def test_a_resend_returns_the_same_ingestion(api: dict[str, Any]) -> None:
    body = ORU.replace("CTRL-77", "CTRL-78").encode()
    first = _post(api, body, "x-application/hl7-v2+er7").json()
    again = _post(api, body, "x-application/hl7-v2+er7").json()
    assert (again["id"], again["duplicate"], first["duplicate"]) == (first["id"], True, False)
    keyed = _post(
        api,
        b'{"resourceType": "Patient", "gender": "male"}',
        "application/fhir+json",
        **{"Idempotency-Key": "order-1"},
    ).json()
    other_body = _post(
        api,
        b'{"resourceType": "Patient", "gender": "other"}',
        "application/fhir+json",
        **{"Idempotency-Key": "order-1"},
    ).json()
    assert (other_body["id"], other_body["duplicate"]) == (keyed["id"], True)


def test_a_partner_sees_only_its_own_ingestions(api: dict[str, Any]) -> None:
    mine = _post(
        api, ORU.replace("CTRL-77", "CTRL-79").encode(), "x-application/hl7-v2+er7"
    ).json()["id"]
    theirs = api["client"].get(f"/ingest/{mine}", headers={"x-api-key": api["keys"]["p2"]})
    assert theirs.status_code == 404
    assert theirs.json()["resourceType"] == "OperationOutcome"


def test_gzip_is_accepted_and_a_bomb_is_refused(api: dict[str, Any]) -> None:
    ok = _post(
        api,
        gzip.compress(ORU.replace("CTRL-77", "CTRL-80").encode()),
        "x-application/hl7-v2+er7",
        **{"Content-Encoding": "gzip"},
    )
    assert ok.status_code == 202
    bomb = _post(
        api,
        gzip.compress(b"{" + b" " * 200_000 + b"}"),
        "application/fhir+json",
        **{"Content-Encoding": "gzip"},
    )
    assert bomb.status_code == 413
    assert "inflates past 65536 bytes" in bomb.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    ("body", "content_type", "extra", "status", "words"),
    [
        (b"", "application/fhir+json", {}, 400, "empty"),
        (b"hello", "text/plain", {}, 415, "not supported"),
        (b"x" * 5000, "application/fhir+json", {}, 413, "POST /api/ingest/uploads"),
        (b"a,b\n1,2\n", "text/csv", {}, 400, "needs ?mapping"),
        (b"a,b\n1,2\n", "text/csv", {"mapping": "nope"}, 400, "no CSV mapping"),
        (b"{}", "application/fhir+json", {"encoding": "br"}, 415, "Content-Encoding"),
        (b"{}", "application/fhir+json", {"mapping": "../../x"}, 400, "mapping name"),
        (b"{}", "application/fhir+json", {"mapping": "caf\u00e9"}, 400, "mapping name"),
        (b"{}", "application/fhir+json", {"key": "two words"}, 400, "Idempotency-Key"),
        (b"{}", "application/fhir+json", {"key": "k" * 256}, 400, "Idempotency-Key"),
    ],
)
def test_refusals_are_operation_outcomes(
    api: dict[str, Any],
    body: bytes,
    content_type: str,
    extra: dict[str, str],
    status: int,
    words: str,
) -> None:
    headers = {"Content-Encoding": extra["encoding"]} if "encoding" in extra else {}
    if "key" in extra:
        headers["Idempotency-Key"] = extra["key"]
    response = api["client"].post(
        "/ingest",
        params={"mapping": extra["mapping"]} if "mapping" in extra else None,
        content=body,
        headers={"content-type": content_type, "x-api-key": api["keys"]["p1"], **headers},
    )
    assert response.status_code == status, response.text
    assert words in response.json()["issue"][0]["diagnostics"]


def test_credentials(api: dict[str, Any]) -> None:
    client: httpx.Client = api["client"]
    no_key = client.post(
        "/ingest", content=ORU, headers={"content-type": "x-application/hl7-v2+er7"}
    )
    assert no_key.status_code == 401
    bad_key = client.post(
        "/ingest",
        content=ORU,
        headers={
            "content-type": "x-application/hl7-v2+er7",
            "x-api-key": "fik_0000000000000000_" + "a" * 43,
        },
    )
    assert bad_key.status_code == 401
    reader = _post(api, ORU.encode(), "x-application/hl7-v2+er7", partner="reader")
    assert reader.status_code == 403
    no_function_key = httpx.post(
        f"{api['host'].base_url}/api/ingest",
        content=ORU,
        headers={"content-type": "x-application/hl7-v2+er7", "x-api-key": api["keys"]["p1"]},
    )
    assert no_function_key.status_code == 401


def test_hl7_callers_get_acks(api: dict[str, Any]) -> None:
    accepted = _post(
        api,
        ORU.replace("CTRL-77", "CTRL-81").encode(),
        "x-application/hl7-v2+er7",
        accept="x-application/hl7-v2+er7",
    )
    assert accepted.status_code == 202
    segments = accepted.text.strip("\r").split("\r")
    assert segments[0].startswith("MSH|^~\\&|EHR|HOSP|LAB|ACME|")
    assert segments[1].startswith("MSA|AA|CTRL-81|ingestion ")
    refused = _post(api, b"x" * 5000, "x-application/hl7-v2+er7", accept="x-application/hl7-v2+er7")
    assert refused.status_code == 413
    msa = refused.text.split("\r")[1].split("|")
    assert msa[1] == "AE" and "ingest-drop" in msa[3]  # an error in the message: AE
    assert refused.text.split("\r")[2].startswith("ERR|")
    # The review's LOW-1, as reproduced there: an escaped segment in MSH-12 became a first
    # "MSA|AA" before the real refusal; and MSA-2 of a gzip body was empty.
    inject = r"\X0D\MSA\F\AA\F\C2\F\accepted"
    crafted = f"MSH|^~\\&|S|F|R|RF|20260101||ADT^A01|C2|P|2.5.1{inject}\rPID|1||X^^^FAC^MR\r"
    ack = ("x-application/hl7-v2+er7", "x-application/hl7-v2+er7")
    forged = _post(api, crafted.encode(), ack[0], accept=ack[1], **{"content-encoding": "br"})
    assert forged.status_code == 415
    lines = re.split(r"[\r\n]+", forged.text.strip())
    assert [line[:3] for line in lines] == ["MSH", "MSA", "ERR"]
    assert lines[1].startswith("MSA|AE|C2|Content-Encoding 'br' is not supported")
    zipped = gzip.compress(ORU.replace("CTRL-77", "CTRL-83").encode())
    gz = _post(api, zipped, ack[0], accept=ack[1], **{"content-encoding": "gzip"})
    assert gz.status_code == 202 and gz.text.split("\r")[1].startswith("MSA|AA|CTRL-83|")


def test_an_hl7_message_type_we_do_not_convert_gets_an_ae_and_nothing_is_stored(
    api: dict[str, Any],
) -> None:
    ack = "MSH|^~\\&|EHR|HOSP|LAB|ACME|20260301101500||ACK^R01|CTRL-90|P|2.5.1\rMSA|AA|CTRL-77\r"
    hl7 = "x-application/hl7-v2+er7"
    answered = _post(api, ack.encode(), hl7, accept=hl7)
    assert answered.status_code == 422
    lines = answered.text.strip("\r").split("\r")
    assert lines[1].startswith("MSA|AE|CTRL-90|unsupported message type")
    assert lines[2].startswith("ERR|")
    outcome = _post(api, ack.replace("CTRL-90", "CTRL-91").encode(), hl7).json()
    assert outcome["issue"][0]["code"] == "not-supported"
    assert outcome["issue"][0]["location"] == ["MSH-9"]
    raw = api["clients"].container(Container.RAW)
    stored = [raw.download_blob(b.name).readall() for b in raw.list_blobs(name_starts_with="p1/")]
    assert not [body for body in stored if b"ACK^R01" in body]


def _ack_fields(text: str) -> list[list[str]]:
    return [segment.split("|") for segment in text.strip("\r").split("\r")]


def _application_ack(api: dict[str, Any], ingestion: str, partner: str) -> httpx.Response:
    def final() -> httpx.Response | None:
        answer = api["client"].get(
            f"/ingest/{ingestion}/ack", headers={"x-api-key": api["keys"][partner]}
        )
        assert answer.status_code in (200, 202), answer.text
        if answer.status_code == 202:
            assert answer.headers["retry-after"]
        return answer if answer.status_code == 200 else None

    return wait_for(final, what="the application ACK")


def test_a_body_without_msh_gets_an_ae_at_the_door_and_nothing_is_stored(
    api: dict[str, Any],
) -> None:
    # The issue's reproduction: this got 202 and MSA|AA, and normalization rejected it later.
    hl7 = "x-application/hl7-v2+er7"
    answered = _post(api, b"PID|1||X-DOOR-1", hl7, accept=hl7)
    assert answered.status_code == 400
    _msh, msa, err = _ack_fields(answered.text)
    assert msa[:3] == ["MSA", "AE", ""] and "MSH segment" in msa[3]
    assert err[2] == "MSH^1" and err[3].startswith("100^") and err[4] == "E"
    no_control = ORU.replace("|CTRL-77|", "||").encode()
    lacking = _ack_fields(_post(api, no_control, hl7, accept=hl7).text)
    assert lacking[1][1] == "AE" and lacking[2][2] == "MSH^1^10" and lacking[2][3][:4] == "101^"
    outcome = _post(api, b"PID|1||X-DOOR-2", hl7).json()
    assert outcome["issue"][0]["code"] == "structure" and outcome["issue"][0]["location"] == ["MSH"]
    raw = api["clients"].container(Container.RAW)
    stored = [raw.download_blob(b.name).readall() for b in raw.list_blobs()]
    assert not [body for body in stored if b"X-DOOR" in body or body == no_control]


def test_enhanced_mode_gets_a_commit_ack_then_the_application_ack_on_request(
    api: dict[str, Any],
) -> None:
    hl7 = "x-application/hl7-v2+er7"
    enhanced = ORU.replace("|CTRL-77|P|2.5.1", "|CTRL-E1|P|2.5.1|||AL|AL").encode()
    committed = _post(api, enhanced, hl7, accept=hl7)
    assert committed.status_code == 202
    msa = _ack_fields(committed.text)[1]
    assert msa[:3] == ["MSA", "CA", "CTRL-E1"]
    ingestion = committed.headers["location"].rsplit("/", 1)[1]
    application = _application_ack(api, ingestion, "p1")
    assert application.headers["content-type"].startswith(hl7)
    msh, msa = _ack_fields(application.text)
    assert msa[:3] == ["MSA", "AA", "CTRL-E1"] and "resources permitted" in msa[3]
    assert msh[2:6] == ["EHR", "HOSP", "LAB", "ACME"] and msh[8] == "ACK^R01^ACK"
    # Another partner learns nothing of it; a message normalization rejects gets its AE.
    other = api["client"].get(f"/ingest/{ingestion}/ack", headers={"x-api-key": api["keys"]["p2"]})
    assert other.status_code == 404
    unreadable = "MSH|^~\\&|LAB|ACME|EHR|HOSP|20260301101500||ORU^R01|CTRL-E2|P|2.5.1\r"
    refused = _post(api, unreadable.encode(), hl7, accept=hl7)
    assert refused.status_code == 202 and _ack_fields(refused.text)[1][1] == "AA"
    late = _application_ack(api, refused.headers["location"].rsplit("/", 1)[1], "p1")
    msh, msa, err = _ack_fields(late.text)
    assert msa[:3] == ["MSA", "AE", "CTRL-E2"] and err[0] == "ERR" and err[4] == "E"


def test_a_partner_may_choose_to_store_types_we_do_not_convert_and_is_told_so(
    api: dict[str, Any],
) -> None:
    hl7 = "x-application/hl7-v2+er7"
    query = "MSH|^~\\&|EHR|HOSP|LAB|ACME|20260301101500||QBP^Q22|CTRL-Q1|P|2.5.1\rQPD|Q22\r"
    stored = _post(api, query.encode(), hl7, partner="keeper", accept=hl7)
    assert stored.status_code == 202
    msa = _ack_fields(stored.text)[1]
    assert (
        msa[:3] == ["MSA", "AA", "CTRL-Q1"] and "not converted: unsupported message type" in msa[3]
    )
    ingestion = stored.headers["location"].rsplit("/", 1)[1]
    _msh, msa, err = _ack_fields(_application_ack(api, ingestion, "keeper").text)
    assert msa[1] == "AE" and err[3].startswith("200^")
    assert _post(api, query.encode(), hl7, partner="p2", accept=hl7).status_code == 422


def test_raw_payload_is_named_by_partner_date_and_content(api: dict[str, Any]) -> None:
    import hashlib

    body = ORU.replace("CTRL-77", "CTRL-82").encode()
    _post(api, body, "x-application/hl7-v2+er7")
    digest = hashlib.sha256(body).hexdigest()
    names = [
        b.name for b in api["clients"].container(Container.RAW).list_blobs(name_starts_with="p1/")
    ]
    assert any(n.endswith(f"/{digest}.hl7") for n in names)


def test_the_sweeper_finishes_a_submission_that_stopped_half_way(api: dict[str, Any]) -> None:
    """A crash after storing the payload but before enqueueing: the timer resumes it; a
    claim whose payload never got stored is dropped (its caller got no 202)."""
    from datetime import UTC, datetime, timedelta

    from shared.pipeline.journey import TableIngestionLog

    clients: StorageClients = api["clients"]
    claims = clients.table_client(Table.IDEMPOTENCY)
    old = datetime.now(UTC) - timedelta(minutes=10)
    stored_name = "p1/2026/03/01/crashed.hl7"
    clients.container(Container.RAW).upload_blob(
        stored_name, ORU.replace("CTRL-77", "CTRL-90").encode(), metadata={"format": "hl7v2"}
    )
    claims.create_entity(
        {
            "PartitionKey": "p1",
            "RowKey": "sha-crashed",
            "ingestion_id": "ing-crashed",
            "created": old,
            "raw_blob": stored_name,
            "stored": False,
        }
    )
    claims.create_entity(
        {
            "PartitionKey": "p1",
            "RowKey": "sha-nothing",
            "ingestion_id": "ing-nothing",
            "created": old,
            "raw_blob": "p1/2026/03/01/never.hl7",
            "stored": False,
        }
    )
    log = TableIngestionLog(clients.table_client(Table.INGESTIONS))
    row = wait_for(
        lambda: (r := log.get("p1", "ing-crashed")) and "normalize_status" in r and r,
        timeout=60,
        what="swept submission to be normalized",
    )
    assert row["received_swept"] == 1
    assert row["normalize_status"] == "normalized"
    assert claims.get_entity("p1", "sha-crashed")["stored"] is True
    wait_for(
        lambda: not list(claims.query_entities("RowKey eq 'sha-nothing'")), what="dropped claim"
    )


def _cli(api: dict[str, Any], *args: str) -> Any:
    import os
    import subprocess
    import sys

    host: HostProcess = api["host"]
    env = {**os.environ, **host.env}
    return subprocess.run(
        [sys.executable, "-c", "from intake_cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=host.log_path.parent,
        timeout=120,
        check=False,
    )


def _report(clients: StorageClients, path: str) -> dict[str, Any] | None:
    try:
        return json.loads(clients.container(Container.REPORTS).download_blob(path).readall())
    except ResourceNotFoundError:
        return None


def test_cli_submit_and_status(api: dict[str, Any], tmp_path: Any) -> None:
    folder = tmp_path / "outbox"
    folder.mkdir()
    (folder / "a.hl7").write_text(ORU.replace("CTRL-77", "CTRL-91"))
    (folder / "b.hl7").write_text(ORU.replace("CTRL-77", "CTRL-92"))
    (folder / "big.ndjson").write_bytes(b'{"resourceType": "Patient", "gender": "male"}\n' * 200)
    url = f"{api['host'].base_url}/api"
    auth = ["--url", url, "--key", api["keys"]["p1"], "--function-key", FUNCTION_KEY]
    # the big file is a batch upload: a URL from the API, then three 4 KiB blocks PUT with it
    limits = ("--drop-over", "4000", "--block-size", "4096")
    done = _cli(api, "submit", str(folder), *auth, *limits)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("\t") for line in done.stdout.strip().splitlines())
    uploaded = lines[str(folder / "big.ndjson")]
    assert re.fullmatch(r"uploaded as ingest-drop/p1/uploads/[0-9a-f]{32}/big\.ndjson", uploaded)
    ingestion = lines[str(folder / "a.hl7")]
    shown = _cli(api, "status", ingestion, *auth)
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == ingestion
    clients: StorageClients = api["clients"]
    name = uploaded.removeprefix("uploaded as ingest-drop/")
    blocks = clients.container(Container.INGEST_DROP).get_blob_client(name).get_block_list()[0]
    assert len(blocks) == 3
    report = wait_for(
        lambda: _report(clients, f"{name}.report.json"), what="the uploaded file's report"
    )
    assert (report["partner"], report["records"], report["status"]) == ("p1", 200, "processed")


def test_cli_replay_moves_poison_back_with_bodies_unchanged(api: dict[str, Any]) -> None:
    clients: StorageClients = api["clients"]
    poison = clients.queue_client("deliver-poison")
    poison.send_message(b"first")
    poison.send_message(b"second")
    done = _cli(api, "replay", "deliver")
    assert done.returncode == 0, done.stderr
    assert "2 message(s) moved" in done.stdout
    moved = sorted(
        m.content for m in clients.queue_client("deliver").receive_messages(max_messages=10)
    )
    assert moved == [b"first", b"second"]


def test_cli_reprocess_runs_a_drop_again(api: dict[str, Any]) -> None:
    clients: StorageClients = api["clients"]
    issued = (
        api["client"]
        .post(
            "/ingest/uploads",
            json={"filename": "again.ndjson"},
            headers={"x-api-key": api["keys"]["p1"]},
        )
        .json()
    )
    put = httpx.put(
        issued["url"],
        content=b'{"resourceType": "Patient"}\n',
        headers={"x-ms-blob-type": "BlockBlob"},
    )
    assert put.status_code == 201

    def report() -> dict[str, Any] | None:
        return _report(clients, f"{issued['blob']}.report.json")

    first = wait_for(report, what="first report")
    # an upload's file is still its partner's when an operator runs it again, later
    done = _cli(api, "reprocess", issued["blob"])
    assert done.returncode == 0, done.stderr
    second = wait_for(
        lambda: (r := report()) and r["ingestions"] != first["ingestions"] and r,
        what="a second run",
    )
    assert second["records"] == 1


def test_ndjson_and_csv_over_http(api: dict[str, Any]) -> None:
    lines = b'{"resourceType": "Patient", "id": "h1", "gender": "female"}\n' * 2
    assert _post(api, lines, "application/x-ndjson").status_code == 202
    sample = (REPO / "docs" / "samples" / "rpm-vitals.csv").read_bytes()
    response = api["client"].post(
        "/ingest?mapping=rpm-vitals",
        content=sample,
        headers={"content-type": "text/csv", "x-api-key": api["keys"]["p1"]},
    )
    assert response.status_code == 202
    ingestion = response.json()["id"]
    journey = wait_for(
        lambda: (
            (
                j := api["client"]
                .get(f"/ingest/{ingestion}", headers={"x-api-key": api["keys"]["p1"]})
                .json()
            )
            and len(j["stages"]) > 1
            and j
        ),
        what="csv normalized",
    )
    assert journey["stages"][1]["status"] == "normalized"


def test_no_patient_data_in_the_host_log(api: dict[str, Any]) -> None:
    """After every test above pushed patients through ingest, normalize and drops (last in
    this module on purpose), the log holds ids and counts, never their data."""
    logs = api["host"].logs()
    assert "Executed 'Functions.normalize'" in logs  # the stages did run and log
    for value in ("Doe", "Jane", "MRN77", "19700101", "1970-01-01", "8867-4"):
        assert value not in logs, value
