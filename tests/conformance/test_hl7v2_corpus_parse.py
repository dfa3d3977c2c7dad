"""Every real sample message in ../shared/corpus parses, and reads as its file says.

The corpus (139 messages from another converter's test suite, MIT) has BOMs and LF
endings as real feeds do. Skipped, with the reason, where the corpus is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.normalize.hl7v2 import parse_message
from tests.conftest import CORPUS

HL7_DIR = CORPUS / "ms-fhir-converter" / "hl7v2"
FILES = sorted(HL7_DIR.glob("*.hl7")) if HL7_DIR.is_dir() else []

pytestmark = pytest.mark.skipif(not FILES, reason=f"HL7 v2 corpus not found at {HL7_DIR}")


def test_the_corpus_is_all_there() -> None:
    assert len(FILES) == 139


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_sample_parses(path: Path) -> None:
    data = path.read_bytes()
    message = parse_message(data)
    text = data.decode("utf-8-sig")
    lines = [
        line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()
    ]
    assert [s.name for s in message] == [line[:3] for line in lines]
    code, event, _ = message.message_type
    assert code and event
    # The file names carry the type for most samples (ADT-A01-01.hl7, ORU-R01-...).
    stem = path.stem.upper().replace("_", "-")
    if stem.startswith(f"{code}-") and "-" in stem[len(code) + 1 :]:
        assert stem.split("-")[1] == event.upper()
    # Every field of every segment reads without error.
    for segment in message:
        for n in range(1, len(segment.fields)):
            for rep in range(1, segment.repetitions(n) + 1):
                segment.components(n, rep)
