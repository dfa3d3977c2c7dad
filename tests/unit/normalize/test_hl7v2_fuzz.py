"""Fuzzing the whole HL7 v2 conversion: messages built from a segment grammar (the
segments we convert, with values chosen to break things: white space of every kind,
escapes, nulls, dates with odd offsets, numbers, repetitions) convert to a Bundle that
validates as R4, or are refused with a NormalizationError; nothing else is raised, and
an example that runs past the deadline fails (a hang).

``make test`` runs INTAKE_FUZZ_EXAMPLES examples (about a minute); ``make fuzz`` runs
many more. A failure prints the message hypothesis shrank it to.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shared.normalize import NormalizationError
from shared.normalize.context import ConversionContext
from shared.normalize.models import PayloadFormat
from shared.normalize.service import convert_payload

EXAMPLES = int(os.environ.get("INTAKE_FUZZ_EXAMPLES", "250"))
BUNDLE = get_fhir_model_class("Bundle")
ZONES = [None, "UTC", "America/Chicago", "Asia/Kolkata", "Pacific/Chatham", "America/St_Johns"]

ATOMS = st.one_of(
    st.sampled_from(
        [
            "",
            '""',
            " ",
            "  x  ",
            "\x0b",
            "\u2028",
            "\xa0",
            "\x85",
            "\\T\\",
            "\\S\\",
            "\\X0D\\",
            "\\H\\bold\\N\\",
            "\\",
            "Y",
            "N",
            "F",
            "M",
            "I",
            "P",
            "A",
            "L",
            "U",
            "MR",
            "SS",
            "NM",
            "ST",
            "TX",
            "CWE",
            "SN",
            "TM",
            "DT",
            "ED",
            "ZZ",
            "LN",
            "UCUM",
            "99ZZZ",
            "ISO",
            "2.16.840.1.113883.19",
            "mg/dL",
            "<",
            ">=",
            "-",
            ":",
            "0",
            "-1.50",
            ".5",
            "99999999999",
            "930",
            "2530",
            "1880",
            "20260230",
            "20260301",
            "202603011030",
            "20260301103015.1234",
            "20260301103015+2400",
            "20260301103015-0500",
            "18800101120000",
        ]
    ),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="|^~&\\\r\n"), max_size=12),
    st.from_regex(r"\A[0-9]{4,14}([+-][0-9]{4})?\Z"),
)
COMPONENT = st.lists(ATOMS, min_size=1, max_size=3).map("&".join)
REPETITION = st.lists(COMPONENT, min_size=1, max_size=6).map("^".join)
FIELD = st.lists(REPETITION, min_size=1, max_size=3).map("~".join)
SEGMENT_NAMES = [
    "EVN", "PID", "PD1", "NK1", "PV1", "PV2", "AL1", "DG1", "PR1", "IN1", "ORC", "OBR",
    "OBX", "NTE", "SPM", "RXA", "RXR", "TXA", "SCH", "AIL", "AIP", "TQ1", "MRG", "ZXT", "FT1",
]  # fmt: skip
SEGMENT = st.builds(
    lambda name, fields: "|".join([name, *fields]),
    st.sampled_from(SEGMENT_NAMES),
    st.lists(FIELD, max_size=30),
)
TYPES = st.sampled_from(
    ["ADT^A01", "ADT^A08", "ORU^R01", "VXU^V04", "MDM^T02", "SIU^S12", "ORM^O01", "ACK^A01", ""]
)
MESSAGE = st.builds(
    lambda kind, stamp, pid, segments, ending: ending.join(
        [f"MSH|^~\\&|S|F|R|RF|{stamp}||{kind}|C1|P|2.5.1", pid, *segments]
    ),
    TYPES,
    st.sampled_from(["20260301101500", "20260301101500-0500", "2026", "20260301101500+9900"]),
    st.sampled_from(["PID|1||M1^^^H^MR||Doe^Jane||19700101|F", "PID|1||^^^H^MR", ""]),
    st.lists(SEGMENT, max_size=12),
    st.sampled_from(["\r", "\n", "\r\n"]),
)


# The 5 s deadline per example is what catches a hang; the whole run's limit grows with
# the budget (about 0.25 s an example), or make fuzz's 6,000 hit the suite's 180 s. No
# explain phase: on Python 3.11 it traces every line, and a failure found on a busy
# machine spent the whole time limit being explained instead of being reported.
@pytest.mark.timeout(max(180, EXAMPLES))
@settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(MESSAGE, st.sampled_from(ZONES))
def test_any_message_converts_to_valid_r4_or_is_refused(message: str, zone: str | None) -> None:
    ctx = ConversionContext(
        partner="fuzz",
        zone=ZoneInfo(zone) if zone else None,
        received=datetime(2026, 3, 1, tzinfo=UTC),
    )
    try:
        result = convert_payload(message.encode(), ctx, PayloadFormat.HL7V2)
    except NormalizationError as exc:
        assert exc.issues
        return
    BUNDLE.model_validate(result.bundle)
