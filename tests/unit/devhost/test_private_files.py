"""Local data private from the first byte (the review's LOW-6)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from devhost.stack import ensure_local_settings
from tests.support.hostproc import REPO


def test_local_settings_are_written_and_kept_0600_whatever_the_umask(tmp_path: Path) -> None:
    shutil.copy(REPO / "local.settings.example.json", tmp_path / "local.settings.example.json")
    old = os.umask(0)
    try:
        target = ensure_local_settings(tmp_path)
        assert target.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
        target.chmod(0o644)  # as a `cp` from the example would leave it
        assert json.loads(target.read_text())["DevHost"]["MasterKey"]
        ensure_local_settings(tmp_path)  # nothing to change: narrowed all the same
        assert target.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
