"""`intake consent evaluate`: offline decisions with the JSON and exit codes issue 5 fixes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from intake_cli.main import main
from tests.conftest import REPO

EXAMPLES = REPO / "node_modules" / "hl7.fhir.r4.examples"
OPT_OUT = {
    "resourceType": "Consent",
    "id": "out",
    "status": "active",
    "scope": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                "code": "patient-privacy",
            }
        ]
    },
    "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
    "patient": {"reference": "Patient/p1"},
    "dateTime": "2026-01-01",
    "policyRule": {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]
    },
    "provision": {
        "provision": [
            {
                "purpose": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": "ETREAT",
                    }
                ]
            }
        ]
    },
}


def _run(*args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = CliRunner().invoke(main, ["consent", "evaluate", *args])
    return result.exit_code, json.loads(result.stdout)


def test_deny_prints_the_decision_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(OPT_OUT))
    code, out = _run("--consent", str(path), "--action", "collect", "--at", "2026-06-01")
    assert code == 0
    assert out["decision"] == "deny"
    assert out["consents"] == ["Consent/out"]
    assert out["default_applied"] is False
    assert set(out) == {"decision", "obligations", "consents", "default_applied", "reasons"}


def test_purpose_with_system_reaches_the_emergency_exception(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": OPT_OUT}]}
        )
    )
    code, out = _run(
        "--consent",
        str(path),
        "--action",
        "access",
        "--at",
        "2026-06-01",
        "--purpose",
        "http://terminology.hl7.org/CodeSystem/v3-ActReason|ERTREAT",
    )
    assert (code, out["decision"]) == (0, "permit")
    assert any("provision.provision[0]" in r for r in out["reasons"])


def test_no_consent_uses_the_policy() -> None:
    code, out = _run("--action", "access", "--policy", "opt-in")
    assert (code, out["decision"], out["default_applied"]) == (0, "deny", True)
    code, out = _run("--action", "access", "--policy", "opt-out", "--purpose", "TREAT")
    assert (code, out["decision"], out["default_applied"]) == (0, "permit", True)


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="R4 examples not installed (make setup)")
def test_resource_and_actor_from_files() -> None:
    code, out = _run(
        "--consent",
        str(EXAMPLES / "Consent-consent-example-smartonfhir.json"),
        "--action",
        "access",
        "--policy",
        "opt-in",
        "--resource",
        str(EXAMPLES / "MedicationRequest-medrx0301.json"),
        "--at",
        "2016-06-23T17:10:00+10:00",
        "--actor",
        "RelatedPerson/peter",
    )
    assert (code, out["decision"]) == (0, "permit")
    assert out["reasons"][-1].endswith("permit by provision.provision[0]")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--action", "fly"], "action must be one of"),
        (["--action", "access", "--purpose", "treat"], "v3 ActReason"),
        (["--action", "access", "--at", "yesterday"], "not an ISO date"),
        (["--action", "access", "--actor", "nobody"], "Type/id or system|value"),
        (["--action", "access", "--policy", "maybe"], "opt-in or opt-out"),
    ],
)
def test_invalid_input_exits_2_with_an_operation_outcome(args: list[str], words: str) -> None:
    code, out = _run(*args)
    assert code == 2
    assert out["resourceType"] == "OperationOutcome"
    assert words in out["issue"][0]["diagnostics"]


def test_an_invalid_consent_file_is_located(tmp_path: Path) -> None:
    bad = {**OPT_OUT, "status": 7, "provision": {"type": "sometimes"}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    code, out = _run("--consent", str(path), "--action", "access")
    assert code == 2
    assert out["issue"][0]["diagnostics"].startswith(f"{path}: Consent is not valid FHIR R4")
    path.write_text(json.dumps({"resourceType": "Patient"}))
    code, out = _run("--consent", str(path), "--action", "access")
    assert code == 2 and "got 'Patient'" in out["issue"][0]["diagnostics"]
