"""checkov over infra/: no failed check, every suppression justified beside it, and the
gate can fail (a weakened copy of the templates is caught).

checkov runs from its own virtual environment (``.venv-iac``, made by ``make setup``): it
pins versions of libraries the app also uses. Offline, it knows no severities, so every
check counts as high: none may fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.support.bicep import INFRA, REPO

CHECKOV = REPO / ".venv-iac" / "bin" / "checkov"


def run_checkov(directory: Path) -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: `make setup` installs checkov there")
    env = {
        **os.environ,
        "BC_SKIP_MAPPING": "TRUE",  # no calls to the vendor's platform
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE",
    }
    done = subprocess.run(
        [CHECKOV, "-d", str(directory), "--framework", "bicep", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@cache
def report_on_infra() -> dict[str, Any]:
    return run_checkov(INFRA)


def test_no_check_fails_and_nothing_fails_to_parse() -> None:
    report = report_on_infra()
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    # Every template was read: each has at least one resource in the results.
    checked = {
        Path(c["file_path"]).name
        for kind in ("passed_checks", "skipped_checks")
        for c in report["results"][kind]
    }
    assert {"storage.bicep", "keyvault.bicep", "functionapp.bicep"} <= checked
    assert report["summary"]["passed"] >= 25


def test_every_suppression_says_why() -> None:
    for check in report_on_infra()["results"]["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) >= 40 and reason != "No comment provided", check["check_id"]


def test_a_weakened_template_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "infra"
    shutil.copytree(INFRA, copy)
    storage = copy / "modules" / "storage.bicep"
    text = storage.read_text()
    assert "minimumTlsVersion: 'TLS1_2'" in text
    storage.write_text(text.replace("minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'"))
    vault = copy / "modules" / "keyvault.bicep"
    text = vault.read_text()
    assert "enablePurgeProtection: true" in text
    vault.write_text(text.replace("enablePurgeProtection: true", "enablePurgeProtection: false"))
    failed = {c["check_id"] for c in run_checkov(copy)["results"]["failed_checks"]}
    assert {"CKV_AZURE_44", "CKV_AZURE_110"} <= failed
