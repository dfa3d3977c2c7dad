"""HL7 v2 over MLLP through ``intake mllp`` and the product's pipeline on Azurite, with
real sockets: ACKs for single, pipelined, broken, oversized and duplicate frames, enhanced
mode field by field, TLS, and one patient's A01, A08, A03 applied in the order sent.

Messages are synthetic (no real patient); the listener runs as an operator runs it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import hl7.client
import pytest

from mllp_listener.client import MllpClient
from shared.intake.mllp_framing import Frame, FrameReader
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


class ReturnAddress(threading.Thread):
    """The sender's own MLLP listener, where enhanced-mode application ACKs go: it keeps
    every frame it gets (and answers nothing: acknowledgements are not acknowledged)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.frames: list[bytes] = []

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                reader = FrameReader(1 << 20)
                while chunk := conn.recv(65536):
                    self.frames += [e.data for e in reader.feed(chunk) if isinstance(e, Frame)]

    def acks_for(self, control: str) -> list[list[list[str]]]:
        return [fields(f) for f in list(self.frames) if fields(f)[1][2] == control]


@pytest.fixture(scope="module")
def stack(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("mllp")
    returns = ReturnAddress()
    returns.start()
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
                        "application_ack_to": f"127.0.0.1:{returns.port}",
                    },
                    {
                        "port": 0,
                        "host": "127.0.0.1",
                        "partner": "lab-a",
                        "idle_timeout": 1,
                        "read_timeout": 1,
                        "write_timeout": 1,
                        "max_skipped_bytes": 4096,
                    },
                    {
                        "port": 0,
                        "host": "127.0.0.1",
                        "partner": "lab-a",
                        "application_ack_to": "connection",
                    },
                ]
            }
        )
    )
    with product_api(azurite, tmp, partners, FUNCTION_KEY, limits) as api:
        listener = MllpProcess(["--config", str(config)], api["host"].env, tmp / "mllp.log")
        listener.start(listeners=5)
        found = [port for _, port in listener.listening]
        tls = ssl.create_default_context(cafile=str(cert))
        yield {**api, "listener": listener, "ports": found, "tls": tls, "returns": returns}
        assert listener.stop() == 0, listener.logs()
    returns.server.close()


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
    logs = wait_for(
        lambda: (
            (text := stack["listener"].logs()) and "skipped on this connection" in text and text
        ),
        what="the connection's summary of what it skipped",
    )
    assert "mllp: skipped bytes outside a frame" in logs and "mllp: skipped a broken frame" in logs
    assert "GET /" not in logs and "HALF" not in logs  # counts only, never the bytes


def test_a_stray_0x1c_inside_a_message_is_kept_and_the_message_stored_whole(
    stack: dict[str, Any],
) -> None:
    # The review's reproduction: the message was cut at the 0x1C, stored short, and AA'd.
    message = adt("A01", "FS-1", "MRN-FS1", "V-FS1") + b"NTE|1||scanned \x1c note\r"
    with MllpClient("127.0.0.1", stack["ports"][0]) as client:
        ack = client.request(message)
    row = wait_for(lambda: _journey(stack, _ingestion(ack)), what="its journey")
    raw = stack["clients"].container(Container.RAW).download_blob(row["received_blob"]).readall()
    assert raw == message


def test_noise_is_logged_once_per_connection_and_a_noisy_connection_is_closed(
    stack: dict[str, Any],
) -> None:
    before = stack["listener"].logs().count("mllp: skipped a broken frame")
    with socket.create_connection(("127.0.0.1", stack["ports"][3]), timeout=10) as noisy:
        with contextlib.suppress(OSError):  # the listener may close while we still write
            noisy.sendall(b"\x0bX" * 5000)  # 5,000 broken frames, 4 KiB allowed
        assert noisy.recv(100) == b""
    logs = wait_for(
        lambda: (text := stack["listener"].logs()) and "bytes skipped" in text and text,
        what="the noisy connection closed",
    )
    assert logs.count("mllp: skipped a broken frame") == before + 1


def test_an_oversized_frame_gets_an_ae_and_the_connection_goes_on(stack: dict[str, Any]) -> None:
    big = adt("A01", "TOO-BIG", "MRN-B1", "V-B1") + b"NTE|1||" + b"x" * (MAX_BYTES * 3) + b"\r"
    with MllpClient("127.0.0.1", stack["ports"][0]) as client:
        client.send(big)
        _msh, msa, err = fields(client.receive())
        assert msa[:3] == ["MSA", "AE", "TOO-BIG"] and "over this listener's limit" in msa[3]
        assert err[3].startswith("207^") and err[4] == "E"
        nxt = client.request(adt("A01", "AFTER-BIG", "MRN-B2", "V-B2"))
        assert fields(nxt)[1][:3] == ["MSA", "AA", "AFTER-BIG"]


def test_a_duplicate_gets_the_originals_ack_and_no_second_ingestion(stack: dict[str, Any]) -> None:
    message = adt("A01", "DUP-1", "MRN-D1", "V-D1")
    with MllpClient("127.0.0.1", stack["ports"][0]) as client:
        first = client.request(message)
        again = client.request(message)
    assert fields(first)[1][1] == "AA" and again == first


def test_the_same_message_on_several_connections_at_once_is_stored_once(
    stack: dict[str, Any],
) -> None:
    # The review's reproduction: a resend racing the first attempt was stored, enqueued
    # and normalized again. Now one request stores it; the others hear AR ("resend") and,
    # once it is stored, the original's AA.
    def send(message: bytes, barrier: threading.Barrier) -> bytes:
        with MllpClient("127.0.0.1", stack["ports"][0], timeout=60) as client:
            barrier.wait()
            answer = client.request(message)
        while fields(answer)[1][1] == "AR":  # the listener closed after it: reconnect
            time.sleep(0.3)
            with MllpClient("127.0.0.1", stack["ports"][0], timeout=60) as client:
                answer = client.request(message)
        return answer

    for n in range(6):
        message = adt("A01", f"RACE-{n}", f"MRN-RACE{n}", f"V-RACE{n}")
        barrier = threading.Barrier(3)
        with ThreadPoolExecutor(max_workers=3) as pool:
            answers = list(pool.map(send, [message] * 3, [barrier] * 3))
        assert {fields(a)[1][1] for a in answers} == {"AA"}
        ingestions = {_ingestion(a) for a in answers}
        assert len(ingestions) == 1
        stored = (
            stack["listener"]
            .logs()
            .count(f"ingest: stored stage=ingest partner=lab-a correlation_id={ingestions.pop()}")
        )
        assert stored == 1


def test_refusals_are_ae_with_an_err_segment(stack: dict[str, Any]) -> None:
    query = b"MSH|^~\\&|ADT-SYS|GENHOSP|FHIR-INTAKE|INTAKE|20260301||QBP^Q22|Q-1|P|2.5.1\rQPD|Q22\r"
    with MllpClient("127.0.0.1", stack["ports"][0]) as client:
        _msh, msa, err = fields(client.request(query))
        assert msa[:3] == ["MSA", "AE", "Q-1"] and msa[3].startswith("unsupported message type")
        assert err[2] == "MSH^1^9" and err[3].startswith("200^")
        _, msa, err = fields(client.request(b"PID|1||NO-HEADER\r"))
        assert msa[:3] == ["MSA", "AE", ""] and err[3].startswith("100^")
        # A second MSH in one frame would go unchecked and unanswered: refused whole.
        two = adt("A01", "TWO-1", "MRN-2A", "V-2A") + query.replace(b"Q-1", b"Q-2")
        _, msa, err = fields(client.request(two))
        assert msa[:3] == ["MSA", "AE", "TWO-1"] and "one message" in msa[3]
        # An MSH-10 no ACK could echo (200 characters) is refused, not stored unnamed.
        long_id = adt("A01", "L" * 200, "MRN-L1", "V-L1")
        _, msa, err = fields(client.request(long_id))
        assert msa[:3] == ["MSA", "AE", ""] and err[2] == "MSH^1^10" and err[3][:4] == "102^"
        # MSH-11 is copied into the ACK (a test message gets a test ACK).
        test_message = adt("A01", "T-1", "MRN-T1", "V-T1").replace(b"|T-1|P|", b"|T-1|T|")
        assert fields(client.request(test_message))[0][10] == "T"
    with MllpClient("127.0.0.1", stack["ports"][1]) as client:  # its partner may not ingest
        _, msa, err = fields(client.request(adt("A01", "NO-ROLE", "MRN-R1", "V-R1")))
        assert msa[:3] == ["MSA", "AE", "NO-ROLE"] and "role ingest" in msa[3]


def test_enhanced_mode_gives_the_commit_ack_and_sends_the_application_ack_to_the_return_address(
    stack: dict[str, Any],
) -> None:
    returns: ReturnAddress = stack["returns"]
    asked = adt("A01", "ENH-1", "MRN-E1", "V-E1").replace(b"|P|2.5.1\r", b"|P|2.5.1|||AL|AL\r", 1)
    with MllpClient("127.0.0.1", stack["ports"][2], tls=stack["tls"], timeout=60) as client:
        # One reply per message on the connection, as a synchronous sender expects.
        commit = fields(client.request(asked))
        plain = fields(client.request(adt("A01", "ENH-2", "MRN-E2", "V-E2")))
        # MSH-15 ER, MSH-16 ER: nothing at all for a success; the next message's CA is next.
        quiet = adt("A01", "ENH-3", "MRN-E3", "V-E3").replace(b"|P|2.5.1\r", b"|P|2.5.1|||ER|ER\r")
        client.send(quiet)
        after = fields(client.request(adt("A01", "ENH-4", "MRN-E4", "V-E4")))
        rejected = b"MSH|^~\\&|ADT-SYS|GENHOSP|FHIR-INTAKE|INTAKE|20260301||ADT^A01|ENH-5|P|2.5.1\r"
        committed_reject = fields(client.request(rejected))
    msh, msa = commit
    assert msa[:3] == ["MSA", "CA", "ENH-1"] and len(commit) == 2
    assert msh[2:6] == ["FHIR-INTAKE", "INTAKE", "ADT-SYS", "GENHOSP"] and msh[8] == "ACK^A01^ACK"
    assert msh[11] == "2.5.1" and msh[10] == "P" and msh[9] and msh[9] != "ENH-1"
    assert plain[1][:3] == ["MSA", "CA", "ENH-2"]  # the listener is set to enhanced mode
    assert after[1][:3] == ["MSA", "CA", "ENH-4"]
    assert committed_reject[1][:3] == ["MSA", "CA", "ENH-5"]  # stored; converting fails later
    for control in ("ENH-1", "ENH-2", "ENH-4", "ENH-5"):
        wait_for(lambda c=control: returns.acks_for(c), timeout=60, what=f"{control}'s app ACK")
    (application,) = returns.acks_for("ENH-1")
    msh, msa = application
    assert msa[:3] == ["MSA", "AA", "ENH-1"] and "resources permitted" in msa[3]
    assert msh[2:6] == ["FHIR-INTAKE", "INTAKE", "ADT-SYS", "GENHOSP"] and msh[8] == "ACK^A01^ACK"
    assert msh[9] != commit[0][9]  # an ACK message of its own
    ((_, msa, err),) = returns.acks_for("ENH-5")
    assert msa[:3] == ["MSA", "AE", "ENH-5"] and err[0] == "ERR" and err[4] == "E"
    time.sleep(1)  # ENH-3 (ER/ER, converted) never gets one
    assert not returns.acks_for("ENH-3")


def test_application_acks_on_the_connection_when_the_listener_is_set_to_it(
    stack: dict[str, Any],
) -> None:
    asked = adt("A01", "ON-1", "MRN-ON1", "V-ON1").replace(b"|P|2.5.1\r", b"|P|2.5.1|||AL|AL\r")
    with MllpClient("127.0.0.1", stack["ports"][4], timeout=60) as client:
        commit = fields(client.request(asked))
        application = fields(client.receive())
        original = fields(client.request(adt("A01", "ON-2", "MRN-ON2", "V-ON2")))
    assert commit[1][:3] == ["MSA", "CA", "ON-1"] and application[1][:3] == ["MSA", "AA", "ON-1"]
    assert original[1][:3] == ["MSA", "AA", "ON-2"]  # original mode: one AA, nothing after


def test_plain_tcp_is_refused_on_the_tls_port(stack: dict[str, Any]) -> None:
    with socket.create_connection(("127.0.0.1", stack["ports"][2]), timeout=10) as raw:
        raw.sendall(b"\x0b" + adt("A01", "PLAIN", "MRN-T1", "V-T1") + b"\x1c\r")
        raw.settimeout(10)
        try:
            answer = raw.recv(4096)
        except ConnectionResetError:
            answer = b""
    assert b"MSA" not in answer


def test_idle_stalled_slow_and_unread_connections_are_closed_at_their_time_outs(
    stack: dict[str, Any],
) -> None:
    port = stack["ports"][3]  # idle, read and write time-outs of 1 s
    with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        started = time.monotonic()
        assert idle.recv(100) == b""  # closed by the listener
        assert 0.8 < time.monotonic() - started < 8
    with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
        stalled.sendall(b"\x0bMSH|^~\\&|SLOW")  # a frame begun and never finished
        started = time.monotonic()
        assert stalled.recv(100) == b""
        assert 0.8 < time.monotonic() - started < 8
    # A byte every 0.3 s keeps every read short; the frame's own deadline still holds.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
        started = time.monotonic()
        with contextlib.suppress(OSError):
            for byte in b"\x0b" + adt("A01", "DRIP", "MRN-DRIP", "V-DRIP"):
                slow.sendall(bytes([byte]))
                time.sleep(0.3)
                if time.monotonic() - started > 6:
                    break
        slow.settimeout(5)
        with contextlib.suppress(OSError):
            assert slow.recv(100) == b""
        assert time.monotonic() - started < 6
    # A sender that never reads its ACKs is dropped once they back up.
    with socket.socket() as unread:
        unread.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        unread.connect(("127.0.0.1", port))
        frames = b"".join(
            b"\x0b" + adt("A01", f"U-{n}", f"MRN-U{n}", "V-U") + b"\x1c\r" for n in range(3)
        )
        started = time.monotonic()
        with contextlib.suppress(OSError):
            while time.monotonic() - started < 30:
                unread.sendall(frames * 50)
        assert time.monotonic() - started < 30
    logs = wait_for(
        lambda: (text := stack["listener"].logs()) and "write time-out" in text and text,
        timeout=30,
        what="the time-outs logged",
    )
    assert "idle time-out" in logs and "read time-out" in logs and "SLOW" not in logs


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
