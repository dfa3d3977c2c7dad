"""The operator console in a real Chromium against the product on the local host:
an operator signs in, finds an admission by MSH-10 and by patient identifier, opens its
journey (stages, ACK, the resources written), opens the payload (audited), reads the
figures and replays a poisoned message; a partner sees only its own ingestions. Each
view's screenshot is kept in ``.artifacts/console/``. The HTTP-level rules (cookies,
CSRF, headers, refusals) are checked with plain requests on the same host."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from shared.platform.envelope import Envelope
from shared.platform.names import Container, Queue, Table, poison_queue
from shared.records.models import version_blob
from shared.security import Partner
from shared.security.models import Role
from shared.security.partners import TablePartnerDirectory
from tests.e2e.conftest import post_ingest, product_api, wait_stage
from tests.support.app_routes import http_routes
from tests.support.browser import LAUNCH_ARGS, chromium, screenshot_path

pytestmark = pytest.mark.azurite

# Synthetic admissions (no real person); the name is a canary the partner's view must not
# show and the operator's payload view must.
ADMISSION = (
    "MSH|^~\\&|ADT|{facility}|EHR|HOSP|20261201083000||ADT^A01^ADT_A01|{control}|P|2.5.1\r"
    "EVN|A01|20261201083000\r"
    "PID|1||{mrn}^^^{facility}^MR||{family}^Ada||19800214|F\r"
    "PV1|1|I|WARD1^101^A\r"
)
PARTNERS = [
    Partner(id="ops", name="Operations", roles=frozenset({Role.ADMIN, Role.INGEST})),
    Partner(id="clinic-a", name="Clinic A"),
    Partner(id="clinic-b", name="Clinic B"),
]
HL7 = "x-application/hl7-v2+er7"


@pytest.fixture(scope="module")
def console(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The product with three partners and one admission from each clinic, stored."""
    # Partner and key rows read afresh on every request: revocation shows at once.
    fresh = {"INTAKE_PARTNER_CACHE_SECONDS": "0"}
    tmp = tmp_path_factory.mktemp("console")
    with product_api(azurite, tmp, PARTNERS, "fk", extra_env=fresh) as api:
        ids = {}
        for partner, control, family in (
            ("clinic-a", "CONSOLE-A-1", "CANARYFAMILY"),
            ("clinic-b", "CONSOLE-B-1", "OTHERFAMILY"),
        ):
            message = ADMISSION.format(
                facility=partner.upper(), control=control, mrn=f"MRN-{control}", family=family
            )
            ids[partner] = post_ingest(api, partner, message.encode(), HL7)
        for partner, ingestion in ids.items():
            wait_stage(api, partner, ingestion, "store")
        api["ids"] = ids
        api["url"] = f"{api['host'].base_url}/api/console"
        yield api


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=LAUNCH_ARGS)
        yield launched
        launched.close()


def _page(browser: Browser, width: int = 1280, height: int = 900) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("dialog", lambda dialog: dialog.accept())  # the replay buttons ask first
    return page


def _sign_in(page: Page, api: dict[str, Any], partner: str) -> None:
    page.goto(api["url"])
    expect(page).to_have_url(f"{api['url']}/signin")
    page.get_by_label("API key or Entra ID access token").fill(api["keys"][partner])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("viewer")).to_have_text(partner)


def _patient(api: dict[str, Any], partner: str, ingestion: str) -> dict[str, Any]:
    """The Patient the ingestion wrote, read from the record's storage."""
    journey = (
        api["client"]
        .get(f"/ingest/{ingestion}", headers={"x-api-key": api["keys"][partner]})
        .json()
    )
    store = next(s for s in journey["stages"] if s["stage"] == "store")
    reference = next(w for w in store["written"] if w.startswith("Patient/"))
    kind, rid, _, version = reference.split("/")
    blob = (
        api["clients"]
        .container(Container.FHIR)
        .download_blob(version_blob(kind, rid, int(version)))
    )
    patient: dict[str, Any] = json.loads(blob.readall())
    return patient


def test_an_operator_answers_what_happened_to_a_message(
    console: dict[str, Any], browser: Browser
) -> None:
    page = _page(browser)
    page.goto(console["url"])
    page.screenshot(path=screenshot_path("01-sign-in"), full_page=True)
    _sign_in(page, console, "ops")
    expect(page.get_by_role("heading", name="Ingestions")).to_be_visible()
    # With no criteria, the last day's: both clinics' admissions.
    expect(page.get_by_test_id("count")).to_contain_text("2 found")
    page.screenshot(path=screenshot_path("02-ingestions"), full_page=True)

    page.get_by_label("Message id (MSH-10)").fill("CONSOLE-A-1")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("count")).to_contain_text("1 found")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("clinic-a")
    expect(rows.first).to_contain_text("ADT")
    expect(rows.first).to_contain_text("stored")
    page.screenshot(path=screenshot_path("03-search-by-message-id"), full_page=True)

    page.get_by_role("link", name=console["ids"]["clinic-a"]).click()
    expect(page.get_by_test_id("status")).to_have_text("stored")
    for stage in ("received", "normalize", "consent", "store"):
        expect(page.locator(f"li[data-stage='{stage}']")).to_be_visible()
    expect(page.locator("li[data-stage='received']")).to_contain_text("CONSOLE-A-1")
    expect(page.get_by_test_id("ack")).to_contain_text("MSA|AA|CONSOLE-A-1")
    written = page.get_by_test_id("written")
    expect(written).to_contain_text("Patient/")
    expect(written).to_contain_text("Encounter/")
    link = written.get_by_role("link").first.get_attribute("href") or ""
    assert link.startswith("/api/fhir/") and "/_history/" in link
    assert "CANARYFAMILY" not in page.content()  # the journey carries no patient data
    page.screenshot(path=screenshot_path("04-journey"), full_page=True)

    page.get_by_role("button", name="Show the payload and quarantine records").click()
    expect(page.get_by_test_id("raw")).to_contain_text("CANARYFAMILY^Ada")
    page.screenshot(path=screenshot_path("05-payload"), full_page=True)
    audit = console["clients"].container(Container.AUDIT)
    viewed = [
        b.name
        for b in audit.list_blobs()
        if "console-payload-view" in audit.download_blob(b.name).readall().decode()
    ]
    assert len(viewed) == 1  # the showing was recorded, once

    # By patient identifier: the identifier as the record holds it, looked up by hash.
    identifier = _patient(console, "clinic-a", console["ids"]["clinic-a"])["identifier"][0]
    page.goto(console["url"])
    page.get_by_label("Patient identifier").fill(f"{identifier['system']}|{identifier['value']}")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr").first).to_contain_text(console["ids"]["clinic-a"])

    page.get_by_role("link", name="Figures").click()
    day = page.locator("table[data-window='last 24 hours']")
    expect(day.locator("tr", has_text="clinic-a")).to_contain_text("1")
    expect(day.locator("tr", has_text="clinic-b")).to_be_visible()
    page.screenshot(path=screenshot_path("06-figures"), full_page=True)
    page.context.close()


def test_an_operator_replays_a_poisoned_message(console: dict[str, Any], browser: Browser) -> None:
    # A message that waits in normalize-poison, as one does after its last attempt failed:
    # a fresh ingestion of a payload that is stored.
    journey = (
        console["client"]
        .get(
            f"/ingest/{console['ids']['clinic-a']}",
            headers={"x-api-key": console["keys"]["clinic-a"]},
        )
        .json()
    )
    raw = next(s for s in journey["stages"] if s["stage"] == "received")["blob"]
    poisoned = "0b5f3c1e-7d2a-4c8e-9f10-" + secrets.token_hex(6)
    envelope = Envelope.raw_received(poisoned, "clinic-a", raw, datetime.now(UTC))
    console["clients"].queue_client(poison_queue(Queue.NORMALIZE)).send_message(envelope.to_bytes())

    page = _page(browser)
    _sign_in(page, console, "ops")
    page.get_by_role("link", name="Pipeline").click()
    expect(page.get_by_test_id("depth-normalize")).to_have_text("1")
    expect(page.get_by_role("link", name=poisoned)).to_be_visible()
    page.screenshot(path=screenshot_path("07-pipeline-poison"), full_page=True)
    page.get_by_role("button", name="Replay normalize").click()
    expect(page.get_by_role("status")).to_have_text("1 sent back to normalize.")
    expect(page.get_by_test_id("depth-normalize")).to_have_text("0")
    page.screenshot(path=screenshot_path("08-pipeline-replayed"), full_page=True)

    wait_stage(console, "clinic-a", poisoned, "store")  # the stage took it this time
    page.goto(f"{console['url']}/ingestions/clinic-a/{poisoned}")
    expect(page.get_by_test_id("status")).to_have_text("stored")
    page.context.close()


def test_a_partner_sees_only_its_own_ingestions(console: dict[str, Any], browser: Browser) -> None:
    page = _page(browser, 768, 1024)  # a tablet
    _sign_in(page, console, "clinic-b")
    expect(page.get_by_test_id("count")).to_contain_text("1 found")
    expect(page.locator("tbody")).to_contain_text(console["ids"]["clinic-b"])
    expect(page.locator("tbody")).not_to_contain_text(console["ids"]["clinic-a"])
    expect(page.get_by_role("link", name="Pipeline")).to_have_count(0)
    expect(page.get_by_label("Partner")).to_have_count(0)
    # Fits a tablet: nothing wider than the screen but the results' own scroller.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # Every field has a label, and the first Tab reaches the skip link.
    unlabelled = page.eval_on_selector_all(
        "input:not([type=hidden]), select", "els => els.filter(e => !e.labels.length).length"
    )
    assert unlabelled == 0
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.screenshot(path=screenshot_path("09-partner-tablet"), full_page=True)

    # Asking for another partner's rows gets nothing of theirs, however it is asked.
    page.goto(f"{console['url']}?partner=clinic-a")
    expect(page.locator("h1")).to_have_text("Not allowed")
    page.goto(f"{console['url']}?message=CONSOLE-A-1")
    expect(page.get_by_test_id("count")).to_contain_text("0 found")
    page.goto(f"{console['url']}/ingestions/clinic-a/{console['ids']['clinic-a']}")
    expect(page.locator("h1")).to_have_text("Not found")
    page.goto(f"{console['url']}/pipeline")
    expect(page.locator("h1")).to_have_text("Not allowed")

    page.goto(f"{console['url']}/ingestions/clinic-b/{console['ids']['clinic-b']}")
    expect(page.get_by_test_id("status")).to_have_text("stored")
    expect(
        page.get_by_role("button", name="Show the payload and quarantine records")
    ).to_have_count(0)
    assert "OTHERFAMILY" not in page.content()
    page.screenshot(path=screenshot_path("10-partner-journey"), full_page=True)
    page.context.close()


def _signed_in_client(console: dict[str, Any], partner: str) -> httpx.Client:
    """A plain HTTP client with a console session (the form's own steps)."""
    client = httpx.Client(base_url=console["url"], timeout=30, follow_redirects=False)
    form = client.get("/signin")
    login = form.text.split('name="login" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/signin", data={"credential": console["keys"][partner], "login": login})
    assert answer.status_code == 303, answer.text
    return client


def test_every_console_route_needs_a_session(console: dict[str, Any]) -> None:
    # Anonymous to the Functions host (a browser sends no function key), so each route
    # checks the session itself: without one, only the sign-in form and the assets answer.
    public = {"console_signin", "console_asset"}
    routes = [r for r in http_routes() if r[0].startswith("console_")]
    assert {r[0] for r in routes} >= public | {"console_payload", "console_replay"}
    with httpx.Client(base_url=f"{console['host'].base_url}/api", timeout=30) as client:
        for name, method, route in routes:
            if name in public:
                continue
            path = "/" + route.replace("{partner}", "clinic-a").replace(
                "{id}", console["ids"]["clinic-a"]
            )
            forged = {"cookie": "fik_console=" + "A" * 43}  # no such session
            for headers in ({}, forged):
                answer = client.request(method, path, headers=headers, data={"csrf": "x"})
                assert answer.status_code == 303, (name, method, answer.status_code)
                assert answer.headers["location"] == "/api/console/signin"
                assert "CANARYFAMILY" not in answer.text


def test_sessions_forms_and_headers(console: dict[str, Any]) -> None:
    with httpx.Client(base_url=console["url"], timeout=30, follow_redirects=False) as anonymous:
        assert anonymous.get("").headers["location"] == "/api/console/signin"
        assert anonymous.get("/pipeline").status_code == 303
        form = anonymous.get("/signin")
        login_cookie = form.headers["set-cookie"]
        assert "HttpOnly" in login_cookie and "SameSite=Strict" in login_cookie
        login = form.text.split('name="login" value="', 1)[1].split('"', 1)[0]
        refused = anonymous.post("/signin", data={"credential": "fik_nope_nope", "login": login})
        assert refused.status_code == 401 and "not valid" in refused.text
        # A sign-in posted without the form's token (from another site) starts nothing.
        anonymous.cookies.clear()
        forged = anonymous.post("/signin", data={"credential": console["keys"]["ops"]})
        assert forged.status_code == 400 and "expired" in forged.text
        assert "fik_console=" not in forged.headers["set-cookie"]  # only a new form's token
        # Nor does one with too many fields, or too large: a 413 page, not a crash.
        many = anonymous.post("/signin", data={f"f{n}": "1" for n in range(25)})
        assert many.status_code == 413
        assert anonymous.post("/signin", content=b"x=" + b"y" * 20_000).status_code == 413
        # Assets are ours, and nothing else is served under their name.
        css = anonymous.get("/assets/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert anonymous.get("/assets/..%2Fpages.py").status_code == 404

    with contextlib.closing(_signed_in_client(console, "ops")) as ops:
        page = ops.get("")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-frame-options"] == "DENY"
        # A replay without the page's token, or from another origin, does nothing.
        assert ops.post("/pipeline/replay", data={"queue": "normalize"}).status_code == 403
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        other = ops.post(
            "/pipeline/replay",
            data={"queue": "normalize", "csrf": csrf},
            headers={"origin": "https://evil.example"},
        )
        assert other.status_code == 403
        done = ops.post("/pipeline/replay", data={"queue": "normalize", "csrf": csrf})
        assert done.status_code == 303
        # Odd values in links and fields are refused as such, never a failed function.
        for odd in ("/pipeline?done=normalize&moved=%C2%B2", "/pipeline?done=x&moved=" + "9" * 50):
            assert ops.get(odd).status_code == 200
        early = ops.post("", data={"csrf": csrf, "since": "0001-01-01T00:00+01:00"})
        assert early.status_code == 400 and "within years" in early.text
        linked = ops.get("", params={"patient": "urn:oid:1.2|MRN-1"})
        assert linked.status_code == 400 and "with the form" in linked.text
        # Another cookie on the origin, however malformed, does not lose the session;
        # two session cookies (one tossed in at another path) are not trusted.
        session = ops.cookies.get("fik_console") or ""
        odd_cookies = f'prefs={{"a":1}}; x="unterminated; fik_console={session}'
        assert ops.get("", headers={"cookie": odd_cookies}).status_code == 200
        tossed = f"fik_console=forged; fik_console={session}"
        assert ops.get("", headers={"cookie": tossed}).status_code == 303
        # A payload's own id is searchable on every format: a FHIR resource's, here.
        patient = {"resourceType": "Patient", "id": "console-fhir-1", "gender": "female"}
        posted = post_ingest(
            console, "clinic-a", json.dumps(patient).encode(), "application/fhir+json"
        )
        wait_stage(console, "clinic-a", posted, "store")
        found = ops.post("", data={"csrf": csrf, "message": "console-fhir-1"})
        assert found.status_code == 200 and posted in found.text
        assert found.text.count(f"/ingestions/clinic-a/{posted}") == 1
        # Signing out ends the session on the server: the old cookie is worth nothing.
        cookie = ops.cookies.get("fik_console")
        assert ops.post("/signout", data={"csrf": csrf}).status_code == 303
        ops.cookies.set("fik_console", cookie or "", path="/api/console")
        assert ops.get("").headers["location"] == "/api/console/signin"

    with contextlib.closing(_signed_in_client(console, "clinic-b")) as partner:
        page = partner.get("")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        # A partner's own session cannot replay or open payloads, even with its token.
        replay = partner.post("/pipeline/replay", data={"queue": "normalize", "csrf": csrf})
        assert replay.status_code == 403
        own = console["ids"]["clinic-b"]
        payload = partner.post(f"/ingestions/clinic-b/{own}/payload", data={"csrf": csrf})
        assert payload.status_code == 403 and "OTHERFAMILY" not in payload.text
        # Revoking the key it signed in with ends the session at the next page.
        key_id = console["keys"]["clinic-b"].split("_")[1]
        directory = TablePartnerDirectory(console["clients"].table_client(Table.PARTNERS))
        assert directory.revoke_key(key_id) == "clinic-b"
        assert partner.get("").headers["location"] == "/api/console/signin"
