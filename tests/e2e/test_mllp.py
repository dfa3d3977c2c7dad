"""HL7 v2 over MLLP through ``intake mllp`` and the product's pipeline on Azurite, with
real sockets: ACKs for single, pipelined, broken, oversized and duplicate frames, enhanced
mode field by field, TLS, and one patient's A01, A08, A03 applied in the order sent.

Messages are synthetic (no real patient); the listener runs as an operator runs it.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import hl7.client
import pytest

from mllp_listener.client import MllpClient
from shared.platform.names import Container, Table
from shared.security import Partner, Role
from tests.e2e.conftest import product_api
from tests.support.hostproc import wait_for
from tests.support.keyvault_stub import self_signed_certificate
from tests.support.mllpproc import MllpProcess

pytestmark = pytest.mark.azurite

FUNCTION_KEY = "fk-mllp-tests"
MAX_BYTES = 8192


def adt(event: str, control: str, mrn: str, visit: str, sent: str = "20260301101500") -> bytes:
    """A synthetic ADT message of ``event`` for patient ``mrn`` in visit ``visit``."""
    discharge = "|20260301120000" if event == "A03" else ""
    return (
        f"MSH|^~\\&|ADT-SYS|GENHOSP|FHIR-INTAKE|INTAKE|{sent}||ADT^{event}^ADT_A01|{control}|P|"
        "2.5.1\r"
        f"EVN|{event}|{sent}\r"
        f"PID|1||{mrn}^^^GENHOSP^MR||Testpatient^Alex||19800101|F\r"
        f"PV1|1|I|WARD-1^101^A^GENHOSP||||||||||||||||{visit}^^^GENHOSP^VN|||||||||||||||||||||||||"
        f"20260301100000{discharge}\r"
    ).encode()


def fields(ack: bytes) -> list[list[str]]:
    return [segment.split("|") for segment in ack.decode().strip("\r").split("\r")]


@pytest.fixture(scope="module")
def stack(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("mllp")
    partners = [
        Partner(id="lab-a", name="Lab A"),
        Partner(id="reader-only", name="No ingest", roles=frozenset({Role.READ})),
    ]
    limits = {"INTAKE_HTTP_MAX_BYTES": str(MAX_BYTES), "AzureWebJobs.deliver.Disabled": "true"}
    cert, key = self_signed_certificate(tmp)
    config = tmp / "listeners.json"
    config.write_text(
        json.dumps(
            {
                "listeners": [
                    {"port": 0, "host": "127.0.0.1", "partner": "lab-a"},
                    {"port": 0, "host": "127.0.0.1", "partner": "reader-only"},
                    {
                        "port": 0,
                        "host": "127.0.0.1",
                        "partner": "lab-a",
                        "enhanced": True,
                        "tls_cert": str(cert),
                        "tls_key": str(key),
                    },
                    {
                        "port": 0,
                        "host": "127.0.0.1",
                        "partner": "lab-a",
                        "idle_timeout": 1,
                        "read_timeout": 1,
                    },
                ]
            }
        )
    )
    with product_api(azurite, tmp, partners, FUNCTION_KEY, limits) as api:
        listener = MllpProcess(["--config", str(config)], api["host"].env, tmp / "mllp.log")
        listener.start(listeners=4)
        found = [port for _, port in listener.listening]
        tls = ssl.create_default_context(cafile=str(cert))
        yield {**api, "listener": listener, "ports": found, "tls": tls}
        assert listener.stop() == 0, listener.logs()


def _ingestion(ack: bytes) -> str:
    text = fields(ack)[1][3]
    assert text.startswith("ingestion "), text
    return text.split()[1].rstrip(";")


def _journey(stack: dict[str, Any], ingestion: str) -> dict[str, Any] | None:
    row = stack["clients"].table_client(Table.INGESTIONS).get_entity("lab-a", ingestion)
    return dict(row)


def test_a_message_gets_an_aa_once_stored_through_python_hl7s_client(stack: dict[str, Any]) -> None:
    message = adt("A01", "MLLP-1", "MRN-M1", "V-M1")
    with hl7.client.MLLPClient("127.0.0.1", stack["ports"][0]) as client:
        answer = client.send_message(message)
    msh, msa = fields(answer.removeprefix(b"\x0b").removesuffix(b"\x1c\r"))
    assert msa[:3] == ["MSA", "AA", "MLLP-1"]
    assert msh[2:6] == ["FHIR-INTAKE", "INTAKE", "ADT-SYS", "GENHOSP"]
    assert msh[8] == "ACK^A01^ACK" and msh[11] == "2.5.1"
    ingestion = msa[3].split()[1]
    row = wait_for(
        lambda: (j := _journey(stack, ingestion)) and j.get("store_status") and j,
        what="the MLLP message in the record",
    )
    assert row["received_channel"] == "mllp" and row["normalize_status"] == "normalized"
    raw = stack["clients"].container(Container.RAW).download_blob(row["received_blob"]).readall()
    assert raw == message  # stored as sent


def test_pipelined_messages_are_answered_in_order_one_each(stack: dict[str, Any]) -> None:
    messages = [adt("A01", f"PIPE-{n}", f"MRN-P{n}", f"V-P{n}") for n in range(12)]
    with MllpClient("127.0.0.1", stack["ports"][0]) as client:
        client.send_raw(b"".join(b"\x0b" + m + b"\x1c\r" for m in messages))
        answers = [fields(client.receive()) for _ in messages]
    assert [a[1][2] for a in answers] == [f"PIPE-{n}" for n in range(12)]
    assert {a[1][1] for a in answers} == {"AA"}
    assert len({_ingestion_text(a) for a in answers}) == 12


def _ingestion_text(ack: list[list[str]]) -> str:
    return ack[1][3].split()[1]


def test_garbage_and_a_broken_frame_are_skipped_and_the_next_message_is_answered(
    stack: dict[str, Any],
) -> None:
    good = adt("A01", "AFTER-NOISE", "MRN-N1", "V-N1")
    with MllpClient("127.0.0.1", stack["ports"][0]) as client:
        client.send_raw(
            b"GET / HTTP/1.0\r\n\r\n" + b"\x0bMSH|^~\\&|HALF" + b"\x0b" + good + b"\x1c\r"
        )
        assert fields(client.receive())[1][:3] == ["MSA", "AA", "AFTER-NOISE"]
    logs = stack["listener"].logs()
    assert "mllp: skipped bytes outside a frame" in logs and "mllp: skipped a broken frame" in logs
    assert "GET /" not in logs and "HALF" not in logs  # counts only, never the bytes


def test_an_oversized_frame_gets_an_ar_and_the_connection_goes_on(stack: dict[str, Any]) -> None:
    big = adt("A01", "TOO-BIG", "MRN-B1", "V-B1") + b"NTE|1||" + b"x" * (MAX_BYTES * 3) + b"\r"
    with MllpClient("127.0.0.1", stack["ports"][0]) as client:
        client.send(big)
        _msh, msa, err = fields(client.receive())
        assert msa[:3] == ["MSA", "AR", "TOO-BIG"] and "over this listener's limit" in msa[3]
        assert err[3].startswith("207^") and err[4] == "E"
        nxt = client.request(adt("A01", "AFTER-BIG", "MRN-B2", "V-B2"))
        assert fields(nxt)[1][:3] == ["MSA", "AA", "AFTER-BIG"]


def test_a_duplicate_gets_the_originals_ack_and_no_second_ingestion(stack: dict[str, Any]) -> None:
    message = adt("A01", "DUP-1", "MRN-D1", "V-D1")
    with MllpClient("127.0.0.1", stack["ports"][0]) as client:
        first = client.request(message)
        again = client.request(message)
    assert fields(first)[1][1] == "AA" and again == first


def test_refusals_are_ar_with_an_err_segment(stack: dict[str, Any]) -> None:
    query = b"MSH|^~\\&|ADT-SYS|GENHOSP|FHIR-INTAKE|INTAKE|20260301||QBP^Q22|Q-1|P|2.5.1\rQPD|Q22\r"
    with MllpClient("127.0.0.1", stack["ports"][0]) as client:
        _msh, msa, err = fields(client.request(query))
        assert msa[:3] == ["MSA", "AR", "Q-1"] and msa[3].startswith("unsupported message type")
        assert err[2] == "MSH^1^9" and err[3].startswith("200^")
        _, msa, err = fields(client.request(b"PID|1||NO-HEADER\r"))
        assert msa[:3] == ["MSA", "AR", ""] and err[3].startswith("100^")
    with MllpClient("127.0.0.1", stack["ports"][1]) as client:  # its partner may not ingest
        _, msa, err = fields(client.request(adt("A01", "NO-ROLE", "MRN-R1", "V-R1")))
        assert msa[:3] == ["MSA", "AR", "NO-ROLE"] and "role ingest" in msa[3]


def test_enhanced_mode_over_tls_gives_a_commit_then_an_application_ack(
    stack: dict[str, Any],
) -> None:
    asked = adt("A01", "ENH-1", "MRN-E1", "V-E1").replace(b"|P|2.5.1\r", b"|P|2.5.1|||AL|AL\r", 1)
    with MllpClient("127.0.0.1", stack["ports"][2], tls=stack["tls"], timeout=60) as client:
        commit = fields(client.request(asked))
        application = fields(client.receive())
        # The listener is set to enhanced mode: a message that asks for nothing gets both too.
        plain = fields(client.request(adt("A01", "ENH-2", "MRN-E2", "V-E2")))
        plain_application = fields(client.receive())
        # MSH-15 ER, MSH-16 ER: nothing at all for a success; the next message's CA is next.
        quiet = adt("A01", "ENH-3", "MRN-E3", "V-E3").replace(b"|P|2.5.1\r", b"|P|2.5.1|||ER|ER\r")
        client.send(quiet)
        after = fields(client.request(adt("A01", "ENH-4", "MRN-E4", "V-E4")))
        rejected = b"MSH|^~\\&|ADT-SYS|GENHOSP|FHIR-INTAKE|INTAKE|20260301||ADT^A01|ENH-5|P|2.5.1\r"
        late = [fields(client.receive()), fields(client.request(rejected))]
        late += [fields(client.receive()) for _ in range(1 if late[1][1][1] == "CA" else 0)]
    msh, msa = commit
    assert msa[:3] == ["MSA", "CA", "ENH-1"] and len(commit) == 2
    assert msh[2:6] == ["FHIR-INTAKE", "INTAKE", "ADT-SYS", "GENHOSP"] and msh[8] == "ACK^A01^ACK"
    assert msh[11] == "2.5.1" and msh[10] == "P" and msh[9] and msh[9] != "ENH-1"
    msh, msa = application
    assert msa[:3] == ["MSA", "AA", "ENH-1"] and "resources permitted" in msa[3]
    assert msh[2:6] == ["FHIR-INTAKE", "INTAKE", "ADT-SYS", "GENHOSP"] and msh[8] == "ACK^A01^ACK"
    assert msh[9] != commit[0][9]  # an ACK message of its own
    assert plain[1][:3] == ["MSA", "CA", "ENH-2"] and plain_application[1][:3] == [
        "MSA",
        "AA",
        "ENH-2",
    ]
    assert after[1][:3] == ["MSA", "CA", "ENH-4"]
    by_control = {ack[1][2]: ack for ack in late}
    assert "ENH-3" not in by_control  # ER/ER and it went well: silence
    assert by_control["ENH-4"][1][1] == "AA"
    assert by_control["ENH-5"][1][1] in ("CA", "AR")
    reject = [a for a in late if a[1][2] == "ENH-5" and a[1][1] == "AR"]
    assert reject and reject[0][2][0] == "ERR" and reject[0][2][4] == "E"


def test_plain_tcp_is_refused_on_the_tls_port(stack: dict[str, Any]) -> None:
    with socket.create_connection(("127.0.0.1", stack["ports"][2]), timeout=10) as raw:
        raw.sendall(b"\x0b" + adt("A01", "PLAIN", "MRN-T1", "V-T1") + b"\x1c\r")
        raw.settimeout(10)
        try:
            answer = raw.recv(4096)
        except ConnectionResetError:
            answer = b""
    assert b"MSA" not in answer


def test_idle_and_stalled_connections_are_closed_after_their_time_outs(
    stack: dict[str, Any],
) -> None:
    port = stack["ports"][3]  # idle and read time-outs of 1 s
    with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        started = time.monotonic()
        assert idle.recv(100) == b""  # closed by the listener
        assert 0.8 < time.monotonic() - started < 8
    with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
        stalled.sendall(b"\x0bMSH|^~\\&|SLOW")  # a frame begun and never finished
        started = time.monotonic()
        assert stalled.recv(100) == b""
        assert 0.8 < time.monotonic() - started < 8
    logs = wait_for(
        lambda: (text := stack["listener"].logs()) and "read time-out" in text and text,
        what="the time-outs logged",
    )
    assert "mllp: idle time-out, closing" in logs and "SLOW" not in logs


def test_many_connections_at_once_each_answered_in_its_own_order(stack: dict[str, Any]) -> None:
    def sender(c: int) -> list[str]:
        with MllpClient("127.0.0.1", stack["ports"][0], timeout=60) as client:
            return [
                fields(client.request(adt("A01", f"CONN-{c}-{n}", f"MRN-C{c}-{n}", f"V-C{c}-{n}")))[
                    1
                ][2]
                for n in range(5)
            ]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answered = list(pool.map(sender, range(8)))
    assert answered == [[f"CONN-{c}-{n}" for n in range(5)] for c in range(8)]


def _encounters(stack: dict[str, Any]) -> dict[str, str]:
    """Each stored Encounter's visit number -> its current status."""
    rows = (
        stack["clients"].table_client(Table.RESOURCES).query_entities("PartitionKey eq 'Encounter'")
    )
    fhir = stack["clients"].container(Container.FHIR)
    found = {}
    for row in rows:
        name = f"Encounter/{row['RowKey']}/_history/{row['version']}.json"
        encounter = json.loads(fhir.download_blob(name).readall())
        for identifier in encounter.get("identifier") or ():
            found[identifier["value"]] = encounter["status"]
    return found


@pytest.mark.timeout(300)
def test_one_patients_a01_a08_a03_apply_in_the_order_sent_every_time(stack: dict[str, Any]) -> None:
    # Same MSH-7 second for all three, many patients at once, so the stages really run
    # them in parallel; the record must end discharged for every one.
    rounds = 15
    messages = []
    for n in range(rounds):
        for event in ("A01", "A08", "A03"):
            messages.append(adt(event, f"ORD-{n}-{event}", f"MRN-O{n}", f"V-ORD-{n}"))
    ingestions = []
    with MllpClient("127.0.0.1", stack["ports"][0], timeout=60) as client:
        client.send_raw(b"".join(b"\x0b" + m + b"\x1c\r" for m in messages))
        for _ in messages:
            ingestions.append(_ingestion(client.receive()))

    def all_stored() -> bool:
        return all((_journey(stack, i) or {}).get("store_status") == "stored" for i in ingestions)

    wait_for(all_stored, timeout=240, what="every ADT message in the record")
    statuses = _encounters(stack)
    assert {statuses[f"V-ORD-{n}"] for n in range(rounds)} == {"finished"}, statuses
