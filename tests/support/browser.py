"""A real Chromium for the console's tests: Debian's, driven by Playwright for Python.

``make test`` installs Debian's ``chromium`` package when it is missing (Playwright's own
browser download reaches a site this machine cannot); ``CHROMIUM`` names another binary.
Screenshots go to ``.artifacts/console/``, where CI keeps them as the run's artifacts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".artifacts" / "console"
# Chromium as root, offline: no sandbox (root cannot have one), and none of the calls
# home the closed network refuses many at a time.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium() -> str:
    """The Chromium binary; a clear failure when there is none (never a silent skip)."""
    found = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found:
        raise RuntimeError(
            "no Chromium: `make test` installs Debian's chromium package (apt-get), or set "
            "CHROMIUM to a Chromium or Chrome binary"
        )
    return found


def screenshot_path(name: str) -> Path:
    """Where a view's screenshot is kept."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"
