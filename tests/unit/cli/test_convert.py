"""`intake convert`: offline conversion with the exit codes partners script against."""

from __future__ import annotations

import json

from click.testing import CliRunner

from intake_cli.main import main
from tests.conftest import REPO

ORU = (
    "MSH|^~\\&|LAB|ACME|EHR|HOSP|20260301101500||ORU^R01|C1|P|2.5.1\r"
    "PID|1||MRN1^^^HOSP^MR||Doe^Jane||19700101|F\r"
    "OBX|1|NM|8867-4^Heart rate^LN||72|/min^^UCUM|||||F|||202603010800\r"
)


def test_bundle_on_stdout_and_exit_0() -> None:
    result = CliRunner().invoke(main, ["convert", "-", "--tz", "Europe/Berlin"], input=ORU)
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.stdout)
    obs = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    )
    assert obs["effectiveDateTime"] == "2026-03-01T08:00:00+01:00"


def test_rejection_prints_the_operation_outcome_and_exits_2() -> None:
    result = CliRunner().invoke(main, ["convert", "-", "--format", "hl7v2"], input="PID|1||x")
    assert result.exit_code == 2
    outcome = json.loads(result.stdout)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["location"] == ["MSH"]


def test_csv_needs_and_uses_a_mapping() -> None:
    sample = str(REPO / "docs" / "samples" / "lab-results.csv")
    missing = CliRunner().invoke(main, ["convert", sample, "--format", "csv"])
    assert missing.exit_code == 2 and "needs a mapping" in missing.stdout
    done = CliRunner().invoke(main, ["convert", sample, "--mapping", "lab-results"])
    assert done.exit_code == 0
    assert (
        sum(
            e["resource"]["resourceType"] == "Observation" for e in json.loads(done.stdout)["entry"]
        )
        == 4
    )


def test_unknown_time_zone_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["convert", "-", "--tz", "Mars/Olympus"], input=ORU)
    assert result.exit_code == 2 and "unknown time zone" in result.output


def test_a_ccda_document_converts_and_a_hostile_one_exits_2() -> None:
    from tests.support.ccda_documents import document

    result = CliRunner().invoke(main, ["convert", "-"], input=document())
    assert result.exit_code == 0, result.output
    kinds = [e["resource"]["resourceType"] for e in json.loads(result.stdout)["entry"]]
    assert kinds[0] == "Composition" and "Observation" in kinds
    hostile = '<!DOCTYPE x [<!ENTITY e "e">]><ClinicalDocument xmlns="urn:hl7-org:v3"/>'
    refused = CliRunner().invoke(main, ["convert", "-", "--format", "ccda"], input=hostile)
    assert refused.exit_code == 2
    assert "DTD or entity declaration" in json.loads(refused.stdout)["issue"][0]["diagnostics"]
