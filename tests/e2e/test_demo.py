"""``intake demo`` as a user runs it: its own Azurite, host, MLLP listener and receiver, the
samples sent over HTTP, over MLLP and as batch uploads, and a verdict; nothing it started
is left running."""

from __future__ import annotations

import re
import subprocess
import sys

from devhost.azurite import ports_listening
from tests.support.hostproc import REPO


def _demo(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "intake_cli", "demo", "--root", str(REPO), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _ports(output: str) -> tuple[int, ...]:
    """The ports the demo said it used: Azurite's three, the host's and the listener's."""
    storage = re.search(r"Azurite on 127\.0\.0\.1:(\d+)-(\d+)", output)
    host = re.search(r"host +http://127\.0\.0\.1:(\d+)/api", output)
    assert storage and host, output
    first, last = int(storage[1]), int(storage[2])
    mllp = re.search(r"mllp +127\.0\.0\.1:(\d+)", output)
    return (*range(first, last + 1), int(host[1]), *([int(mllp[1])] if mllp else []))


def test_the_demo_runs_the_whole_flow_and_checks_it() -> None:
    code, output = _demo()
    assert code == 0, output
    assert "Everything matched" in output
    assert re.search(
        r"console +http://127\.0\.0\.1:\d+/api/console \(operator API key fik_", output
    )
    # The batch files went up through upload URLs, into the partner's own folder.
    uploaded = re.findall(r"uploaded as ingest-drop/demo-hospital/uploads/[0-9a-f]{32}/", output)
    assert len(uploaded) == 2, output
    # The admission came over MLLP and was acknowledged once stored.
    assert re.search(r"ADT A01 admission .* MLLP -> MSA\|AA\|DEMO-0001, ingestion ", output)
    # Five ingestions reached the store; the opted-out patient's rows were held back.
    assert len(re.findall(r"-> store stored", output)) == 5, output
    assert re.search(r"consent partial \(resources \d+, permitted \d+, denied [1-9]", output)
    assert "not stored: consent denies collection" in output
    # Both subscriptions were notified, with valid signatures.
    assert re.search(r"admissions +msg_\w+_1 .*admission .*Encounter/.*signature ok", output)
    assert re.search(r"heart-rate +msg_\w+_1 .*Observation/.*signature ok", output)
    assert "SIGNATURE INVALID" not in output
    assert re.search(r"\$everything\n   .*\d+ Encounter.*\d+ Observation.*\d+ Patient", output)
    assert not ports_listening("127.0.0.1", _ports(output))


def test_a_demo_that_cannot_finish_says_why_and_cleans_up() -> None:
    code, output = _demo("--timeout", "0.01")  # no ingestion finishes that fast
    assert code == 1, output
    assert "demo failed: timed out after" in output
    assert "Everything matched" not in output
    assert not ports_listening("127.0.0.1", _ports(output))
