"""``intake demo``: the whole product once, end to end, on this machine.

Starts its own Azurite (fresh data in a temporary folder, on free ports), the local host
and a webhook receiver; registers a partner with two subscriptions (admissions, and heart
rates over 120/min); starts the MLLP listener for the partner; sends an opt-out list over
HTTP, an HL7 ADT A01 over MLLP (as an ADT feed arrives) and an ORU R01 over HTTP, then
uploads an NDJSON batch and a remote-monitoring CSV as a partner does (a URL from
``POST /api/ingest/uploads``, the file PUT to ``ingest-drop`` with it); waits for every
ingestion to finish; prints each journey, the admitted patient's ``$everything``, what
consent quarantined and why, and the notifications the receiver got, with their
signatures checked. Exit 0 when everything matched what the samples should produce,
1 with the reasons otherwise; everything it started is stopped either way.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from devhost.azurite import AzuriteError, AzuriteProcess, start_azurite_on_free_ports
from mllp_listener.client import MllpClient
from shared.platform.names import Container, Setting, Table
from shared.platform.provision import provision_storage
from shared.platform.settings import Settings, development_connection_string
from shared.platform.storage import StorageClients, build_storage_clients
from shared.security import Partner, Role, TablePartnerDirectory

from .child_host import (
    free_port,
    start_child_host,
    start_child_listener,
    stop_child_host,
    wait_healthy,
)
from .client import UploadFailedError, put_file, request_upload
from .receiver import Receiver, webhook_receiver

__all__ = ["run_demo"]

PARTNER = Partner(
    id="demo-hospital",
    name="Demo Hospital",
    # registry: its opt-out list (an opt-out registry export) counts, under the trust model
    roles=frozenset({Role.INGEST, Role.READ, Role.REGISTRY}),
    time_zone="America/Chicago",
)
OPERATOR = Partner(id="demo-operator", name="Demo operator", roles=frozenset({Role.ADMIN}))
FUNCTION_KEY = "demo-function-key"
HEART_RATE = "Observation?code=http://loinc.org|8867-4&value-quantity=gt120"
OPTED_OUT_MRN = "RPM-1002"  # docs/samples/demo/opt-out.csv


@dataclass(frozen=True)
class Sent:
    """One input: over HTTP (an ingestion id at once) or uploaded as a batch file (ids from
    its report)."""

    label: str
    path: Path
    content_type: str
    mapping: str = ""
    drop_name: str = ""  # set: a batch upload, with this file name suggested
    mllp: bool = False  # sent over MLLP to the listener instead of over HTTP


SAMPLES = Path("docs/samples")
OPT_OUT = Sent("opt-out list (CSV)", SAMPLES / "demo/opt-out.csv", "text/csv", "opt-out-registry")
INPUTS = (
    Sent(
        "ADT A01 admission (HL7 v2)",
        SAMPLES / "adt-a01.hl7",
        "x-application/hl7-v2+er7",
        mllp=True,
    ),
    Sent(
        "ORU R01 vitals (HL7 v2)",
        SAMPLES / "demo/oru-r01-heart-rate.hl7",
        "x-application/hl7-v2+er7",
    ),
    Sent(
        "NDJSON batch (upload)",
        SAMPLES / "demo/batch.ndjson",
        "application/x-ndjson",
        drop_name="batch.ndjson",
    ),
    Sent(
        "remote monitoring CSV (upload)",
        SAMPLES / "rpm-vitals.csv",
        "text/csv",
        "rpm-vitals",
        drop_name="vitals.csv",
    ),
)


@dataclass
class Outcome:
    """What the demo checks, and what it found wrong."""

    problems: list[str] = field(default_factory=list)

    def expect(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)


def run_demo(root: Path, timeout: float = 120.0, out: TextIO = sys.stdout) -> int:
    """Run the demo from the repository at ``root``; the exit code."""
    print("fhir-intake demo: partner data in, clean FHIR R4 out\n", file=out)
    with tempfile.TemporaryDirectory(prefix="intake-demo-") as tmp:
        work = Path(tmp)
        azurite: AzuriteProcess | None = None
        host: subprocess.Popen[bytes] | None = None
        listener: subprocess.Popen[bytes] | None = None
        try:
            azurite = start_azurite_on_free_ports(
                root, work / "azurite", log_file=work / "azurite.log"
            )
            ports = azurite.ports
            print(f"  storage   Azurite on 127.0.0.1:{ports[0]}-{ports[2]} (fresh data)", file=out)
            values = _app_settings(work, ports[0])
            clients = build_storage_clients(Settings.model_validate(values))
            provision_storage(clients)
            directory = TablePartnerDirectory(clients.table_client(Table.PARTNERS))
            directory.upsert(PARTNER)
            api_key = directory.issue_key(PARTNER.id).token
            directory.upsert(OPERATOR)
            operator_key = directory.issue_key(OPERATOR.id).token
            port = free_port()
            host = start_child_host(root, work, values, port, FUNCTION_KEY)
            base = f"http://127.0.0.1:{port}/api"
            with (
                httpx.Client(
                    base_url=base,
                    timeout=30,
                    headers={"x-functions-key": FUNCTION_KEY, "x-api-key": api_key},
                ) as api,
                webhook_receiver() as receiver,
            ):
                if not wait_healthy(base, host):
                    raise DemoError("the host did not become healthy")
                listener, mllp_port = start_child_listener(root, work, values, PARTNER.id)
                print(f"  host      {base}", file=out)
                print(f"  mllp      127.0.0.1:{mllp_port} (HL7 v2 over MLLP)", file=out)
                print(f"  receiver  {receiver.url} (webhooks)", file=out)
                print(f"  console   {base}/console (operator API key {operator_key})\n", file=out)
                outcome = Outcome()
                _Demo(
                    root, api, clients, receiver, timeout, out, outcome, mllp_port, operator_key
                ).run()
                if sys.stdin.isatty():  # someone watching: let them look around first
                    print(f"\nThe console is at {base}/console; press Enter to stop.", file=out)
                    sys.stdin.readline()
        except (DemoError, AzuriteError, httpx.HTTPError, OSError, RuntimeError) as exc:
            print(f"\ndemo failed: {exc}", file=out)
            log = work / "host.log"
            if log.exists():  # the folder goes away with the demo: show the end here
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print("last lines of the host's log:", *tail, sep="\n  ", file=out)
            return 1
        finally:
            if listener is not None:
                stop_child_host(listener)
            if host is not None:
                stop_child_host(host)
            if azurite is not None:
                azurite.stop()
    if outcome.problems:
        print("\nNOT everything matched:", file=out)
        for problem in outcome.problems:
            print(f"  - {problem}", file=out)
        return 1
    print("\nEverything matched. Stopped the host, the receiver and Azurite.", file=out)
    return 0


class DemoError(Exception):
    """The demo could not go on (a step timed out or was refused)."""


class _Demo:
    def __init__(
        self,
        root: Path,
        api: httpx.Client,
        clients: StorageClients,
        receiver: Receiver,
        timeout: float,
        out: TextIO,
        outcome: Outcome,
        mllp_port: int,
        operator_key: str,
    ) -> None:
        self.root, self.api, self.clients, self.receiver = root, api, clients, receiver
        self.mllp_port, self.operator_key = mllp_port, operator_key
        self.timeout, self.out, self.outcome = timeout, out, outcome
        self.secrets: dict[str, str] = {}
        self.ingestions: dict[str, list[str]] = {}  # label -> ingestion ids
        self.uploads: dict[str, str] = {}  # label -> the uploaded blob's name

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def run(self) -> None:
        self.subscribe()
        self.say("2. Sending")
        self.send(OPT_OUT)
        # The opt-out must be on record before the data it governs arrives.
        self.wait_done([OPT_OUT])
        for sent in INPUTS:
            self.send(sent)
        self.wait_done(list(INPUTS))
        self.wait_notifications()
        self.journeys()
        self.everything()
        self.quarantined()
        self.notifications()
        self.console()

    def subscribe(self) -> None:
        self.say(
            f"1. Partner {PARTNER.id} registered (roles {', '.join(sorted(PARTNER.roles))}); "
            "subscriptions (for the persons it has a relationship with):"
        )
        for name, body in (
            (
                "admissions",
                {"topics": ["admission"], "content": "full-resource", "format": "fhir-r4-backport"},
            ),
            ("heart-rate", {"criteria": HEART_RATE, "format": "cloudevents"}),
        ):
            answer = self.api.post(
                "/subscriptions", json={"endpoint": f"{self.receiver.url}/{name}", **body}
            )
            if answer.status_code != 201:
                raise DemoError(f"subscription {name}: HTTP {answer.status_code} {answer.text}")
            created = answer.json()
            self.secrets[name] = created["secret"]
            self.say(f"   {name:<11} {created['id']}  {json.dumps(body)}")
        self.say()

    def send(self, sent: Sent) -> None:
        data = (self.root / sent.path).read_bytes()
        if sent.drop_name:
            try:  # the partner's own key asks for the URL; storage sees only the URL
                issued = request_upload(self.api, "", {}, sent.drop_name)
                with httpx.Client(timeout=60) as storage:
                    put_file(
                        storage,
                        issued["url"],
                        io.BytesIO(data),
                        len(data),
                        sent.content_type,
                        sent.mapping or None,
                    )
            except UploadFailedError as exc:
                raise DemoError(f"{sent.path.name}: {exc.message}") from exc
            self.uploads[sent.label] = str(issued["blob"])
            self.say(f"   {sent.label:<30} uploaded as ingest-drop/{issued['blob']}")
            return
        if sent.mllp:
            with MllpClient("127.0.0.1", self.mllp_port, timeout=60) as client:
                msa = client.request(data).decode("latin-1").split("\r")[1].split("|")
            if msa[1] != "AA" or not msa[3].startswith("ingestion "):
                raise DemoError(f"{sent.path.name}: MLLP answered {'|'.join(msa)[:300]}")
            ingestion = msa[3].split()[1].rstrip(";")
            self.ingestions[sent.label] = [ingestion]
            self.say(f"   {sent.label:<30} MLLP -> MSA|AA|{msa[2]}, ingestion {ingestion}")
            return
        answer = self.api.post(
            "/ingest",
            content=data,
            params={"mapping": sent.mapping} if sent.mapping else None,
            headers={"content-type": sent.content_type},
        )
        if answer.status_code != 202:
            raise DemoError(f"{sent.path.name}: HTTP {answer.status_code} {answer.text[:300]}")
        ingestion = str(answer.json()["id"])
        self.ingestions[sent.label] = [ingestion]
        self.say(f"   {sent.label:<30} POST /api/ingest -> 202, ingestion {ingestion}")

    def wait_done(self, sents: list[Sent]) -> None:
        """Wait until every ingestion of these inputs has finished, showing progress."""
        deadline = time.monotonic() + self.timeout
        shown = ""
        while True:
            for sent in sents:
                if sent.drop_name and sent.label not in self.ingestions:
                    report = self.report(sent)
                    if report is not None:
                        self.ingestions[sent.label] = list(report["ingestions"])
            ids = [i for s in sents for i in self.ingestions.get(s.label, [])]
            done = [i for i in ids if _finished(self.journey(i))]
            waiting_drops = sum(1 for s in sents if s.label not in self.ingestions)
            line = (
                f"   ... {len(done)}/{len(ids)} ingestions finished"
                + (f", {waiting_drops} drop(s) being split" if waiting_drops else "")
                + f", {len(self.receiver.snapshot())} notification(s)"
            )
            if line != shown:
                self.say(line)
                shown = line
            if not waiting_drops and len(done) == len(ids):
                self.say()
                return
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {self.timeout:g} s: {line.strip()}")
            time.sleep(0.5)

    def wait_notifications(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            paths = {r.path for r in self.receiver.snapshot()}
            if {"/admissions", "/heart-rate"} <= paths:
                time.sleep(1.0)  # let anything still on its way arrive too
                return
            time.sleep(0.25)

    def report(self, sent: Sent) -> dict[str, Any] | None:
        blob = self.clients.container(Container.REPORTS).get_blob_client(
            f"{self.uploads[sent.label]}.report.json"
        )
        if not blob.exists():
            return None
        report: dict[str, Any] = json.loads(blob.download_blob().readall())
        return report

    def journey(self, ingestion: str) -> list[dict[str, Any]]:
        answer = self.api.get(f"/ingest/{ingestion}")
        if answer.status_code != 200:
            return []
        stages: list[dict[str, Any]] = answer.json().get("stages", [])
        return stages

    def journeys(self) -> None:
        self.say("3. Journeys")
        for sent in (OPT_OUT, *INPUTS):
            for ingestion in self.ingestions.get(sent.label, []):
                steps = self.journey(ingestion)
                self.say(f"   {sent.label} ({ingestion})")
                self.say("      " + " -> ".join(_step(s) for s in steps))
                self.outcome.expect(
                    any(s["stage"] == "store" for s in steps)
                    or any(s["stage"] == "consent" for s in steps),
                    f"{sent.label}: ingestion {ingestion} did not reach consent or the store",
                )
        self.say()

    def everything(self) -> None:
        admitted = self.admitted_patient()
        self.say(f"4. The admitted patient, {admitted or '?'}: $everything")
        if admitted is None:
            self.outcome.expect(False, "no admission notification named the patient")
            return
        answer = self.api.get(
            f"/fhir/{admitted}/$everything", headers={"x-purpose-of-use": "TREAT"}
        )
        if answer.status_code != 200:
            self.outcome.expect(False, f"$everything answered HTTP {answer.status_code}")
            return
        types = Counter(
            e["resource"]["resourceType"] for e in answer.json().get("entry", []) if "resource" in e
        )
        self.say("   " + ", ".join(f"{n} {t}" for t, n in sorted(types.items())))
        for wanted in ("Patient", "Encounter", "Observation"):
            self.outcome.expect(types[wanted] > 0, f"$everything holds no {wanted}")
        self.say()

    def quarantined(self) -> None:
        self.say(f"5. Quarantined (patient {OPTED_OUT_MRN} opted out)")
        denied = 0
        for ingestion in self.ingestions.get(INPUTS[3].label, []):
            for step in self.journey(ingestion):
                if step["stage"] != "consent":
                    continue
                denied += int(step.get("denied") or 0)
                for issue in step.get("issues", []):
                    self.say(f"   {issue.get('diagnostics') or issue}")
        names = [
            b.name
            for b in self.clients.container(Container.QUARANTINE).list_blobs()
            if b.name.startswith(f"{PARTNER.id}/")
        ]
        self.say(f"   {denied} record(s) kept out of the record; {len(names)} quarantine blob(s):")
        for name in names[:5]:
            self.say(f"      quarantine/{name}")
        self.outcome.expect(denied > 0, f"nothing of {OPTED_OUT_MRN} was quarantined")
        self.say()

    def notifications(self) -> None:
        self.say("6. Notifications at the receiver (Standard Webhooks signatures checked)")
        got = self.receiver.snapshot()
        verified = Counter[str]()
        for received in got:
            name = received.path.strip("/")
            secret = self.secrets.get(name)
            status = "unknown endpoint"
            if secret is not None:
                try:
                    Webhook(secret).verify(received.body, received.headers)
                    status, verified[name] = "signature ok", verified[name] + 1
                except WebhookVerificationError:
                    status = "SIGNATURE INVALID"
            self.say(
                f"   {name:<11} {received.headers.get('webhook-id', '?'):<48} "
                f"{_focus(received.body)}  {status}"
            )
        self.outcome.expect(verified["admissions"] >= 1, "no verified admission notification")
        self.outcome.expect(verified["heart-rate"] >= 1, "no verified heart-rate notification")
        self.outcome.expect(
            sum(verified.values()) == len(got), "a notification failed its signature check"
        )

    def console(self) -> None:
        """Sign in to the console as the operator and find the MLLP admission by MSH-10,
        as a person would with the form."""
        self.say("7. The operator console")
        base = f"{self.api.base_url}".rstrip("/") + "/console"
        with httpx.Client(timeout=30, follow_redirects=True) as browser:
            form = browser.get(f"{base}/signin").text
            login = form.split('name="login" value="', 1)[-1].split('"', 1)[0]
            found = browser.post(
                f"{base}/signin", data={"credential": self.operator_key, "login": login}
            )
            csrf = found.text.split('name="csrf" value="', 1)[-1].split('"', 1)[0]
            page = browser.post(base, data={"csrf": csrf, "message": "DEMO-0001"})
        rows = page.text.count("<tr>") - 1  # the header's
        stored = "s-stored" in page.text
        self.say(f"   {base}: MSH-10 DEMO-0001 -> {rows} ingestion, {'stored' if stored else '?'}")
        self.outcome.expect(page.status_code == 200 and rows == 1 and stored, "console search")

    def admitted_patient(self) -> str | None:
        for received in self.receiver.snapshot():
            if received.path != "/admissions":
                continue
            for entry in json.loads(received.body).get("entry", []):
                resource = entry.get("resource", {})
                if resource.get("resourceType") == "Encounter":
                    return str(resource["subject"]["reference"])
        return None


def _step(stage: dict[str, Any]) -> str:
    counts = ", ".join(
        f"{k} {v}"
        for k, v in stage.items()
        if isinstance(v, int) and not isinstance(v, bool) and v and k != "bytes"
    )
    return f"{stage['stage']} {stage.get('status', '')}" + (f" ({counts})" if counts else "")


def _finished(stages: list[dict[str, Any]]) -> bool:
    """Stored, or stopped for good (everything quarantined or rejected)."""
    for stage in stages:
        if stage["stage"] == "store":
            return True
        if stage["stage"] in ("normalize", "consent") and stage.get("status") in (
            "rejected",
            "quarantined",
            "denied",
        ):
            return True
    return False


def _focus(body: bytes) -> str:
    """What a notification is about: the resource type and id, and the event or topic."""
    doc = json.loads(body)
    if doc.get("resourceType") == "Bundle":  # R4 backport notification
        params = doc["entry"][0]["resource"]["parameter"]
        topic = next((p.get("valueCanonical") for p in params if p["name"] == "topic"), "")
        focus = [
            part.get("valueReference", {}).get("reference")
            for p in params
            if p["name"] == "notification-event"
            for part in p.get("part", [])
            if part["name"] == "focus"
        ]
        return f"{topic.rsplit(':', 1)[-1]} {', '.join(str(f) for f in focus)}"
    return f"{doc.get('type', '?')} {doc.get('subject', '')}"  # CloudEvent


def _app_settings(work: Path, blob_port: int) -> dict[str, str]:
    return {
        Setting.STORAGE: development_connection_string(blob_port=blob_port),
        Setting.ENVIRONMENT: "development",
        Setting.LOCAL_SECRETS_FILE: str(work / "secrets.json"),
        Setting.SWEEP_SCHEDULE: "0 */1 * * * *",
        Setting.WEBHOOK_RETRY_SCHEDULE: "1,2,5",
    }
