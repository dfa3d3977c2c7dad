"""Property tests for CSV through a mapping: whatever the file holds (a good header with
hostile rows, or any bytes), the result is a Bundle with per-row rejections or a
NormalizationError with issues, never another exception; accepted rows stay accepted."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.normalize import NormalizationError
from shared.normalize.context import ConversionContext
from shared.normalize.service import convert_payload

HEADER = "patient_id,timestamp,heart_rate,bp_systolic,bp_diastolic,spo2,weight_kg\n"
GOOD = "RPM-1,2026-03-01T07:30:00,72,128,82,97,81.4\n"
CELL = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.sampled_from(["", "=1+1", '"', '""', "\r", "1e999", "-0", "NaN", "2026-13-45", "\x00"]),
)
ROW = st.lists(CELL, min_size=0, max_size=9).map(
    lambda cells: ",".join('"' + c.replace('"', '""') + '"' if "," in c else c for c in cells)
)


def _convert(data: bytes) -> None:
    try:
        result = convert_payload(
            data, ConversionContext(partner="p"), mapping="rpm-vitals", content_type="text/csv"
        )
    except NormalizationError as exc:
        assert exc.issues
        return
    assert result.bundle["resourceType"] == "Bundle"
    for rejection in result.rejected:
        assert rejection.issues


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROW, max_size=6))
def test_hostile_rows_after_a_good_header(rows: list[str]) -> None:
    _convert((HEADER + "\n".join(rows)).encode("utf-8", "surrogatepass"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes(data: bytes) -> None:
    _convert(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROW, max_size=4))
def test_a_good_row_survives_bad_neighbours(rows: list[str]) -> None:
    data = (HEADER + GOOD + "\n".join(rows)).encode("utf-8", "surrogatepass")
    result = convert_payload(
        data, ConversionContext(partner="p"), mapping="rpm-vitals", content_type="text/csv"
    )
    kinds = {e["resource"]["resourceType"] for e in result.bundle["entry"]}
    assert "Observation" in kinds
