"""The fuzzer's reproducers (../shared/corpus/fuzz-reproducers): every file converts to
valid R4 or is refused with a reason; none crashes, hangs or grows its output faster
than its input.

The time guard is a hang detector, not a performance target (those live in
``bench/``): at 7fbcd41 these files took 2.5 to 63 s and 720 MB; linear work takes
milliseconds. Skipped, with the reason, where ../shared/corpus is absent.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B import get_fhir_model_class

from shared.normalize import NormalizationError, json_codec
from shared.normalize.context import ConversionContext
from shared.normalize.errors import IssueCode
from shared.normalize.models import Conversion, PayloadFormat
from shared.normalize.service import convert_payload
from tests.conftest import CORPUS

BASE = CORPUS / "fuzz-reproducers"
FILES = sorted(BASE.glob("*.hl7")) if BASE.is_dir() else []
HANG_SECONDS = 20

pytestmark = pytest.mark.skipif(not FILES, reason=f"fuzz reproducers not found at {BASE}")

# Refused, with the reason: a BOM that says UTF-8 before bytes that are not.
REFUSED = {
    "crash-01-bom-then-latin1.hl7": "the message starts with a UTF-8 byte-order mark",
    "crash-01b-bom-then-invalid-byte.hl7": "the message starts with a UTF-8 byte-order mark",
}


@contextmanager
def _hang_guard(seconds: int) -> Iterator[None]:
    def _fail(*_: object) -> None:
        raise TimeoutError(f"over {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, _fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _convert(data: bytes, zone: str = "America/Chicago") -> Conversion:
    ctx = ConversionContext(
        partner="acme", zone=ZoneInfo(zone), received=datetime(2026, 1, 1, tzinfo=UTC)
    )
    with _hang_guard(HANG_SECONDS):
        return convert_payload(data, ctx, PayloadFormat.HL7V2)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_converts_to_valid_r4_or_is_refused_with_a_reason(path: Path) -> None:
    try:
        result = _convert(path.read_bytes())
    except NormalizationError as exc:
        assert path.name in REFUSED, f"refused: {exc}"
        assert exc.issues[0].diagnostics.startswith(REFUSED[path.name])
        return
    assert path.name not in REFUSED
    get_fhir_model_class("Bundle").model_validate(result.bundle)
    # A 14-byte SCH gives a 530-byte Appointment; quadratic growth gave 150 times the
    # input at 1.5 MB and grows with the input.
    size = len(json_codec.dumps(result.bundle))
    assert size < 64 * path.stat().st_size + 100_000, "the output grew faster than the input"


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzz-large")
    script = BASE / "make_large_reproducers.py"
    subprocess.run([sys.executable, str(script), str(out)], check=True, capture_output=True)
    return out


def test_obx5_repetitions_of_a_text_type_give_output_linear_in_the_input(large: Path) -> None:
    path = large / "memory-01-obx5-components-blowup.hl7"
    result = _convert(path.read_bytes())
    get_fhir_model_class("Bundle").model_validate(result.bundle)
    (observation,) = [
        e["resource"]
        for e in result.bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]
    assert "component" not in observation  # was 150 components of the whole text each
    assert len(json.dumps(result.bundle)) < 2 * path.stat().st_size


def test_the_message_size_limit_holds_inside_a_batch(large: Path) -> None:
    with pytest.raises(NormalizationError) as caught:
        _convert((large / "limit-01-batch-of-two-17mb.hl7").read_bytes())
    assert [i.code for i in caught.value.issues] == [IssueCode.TOO_LONG, IssueCode.TOO_LONG]
