"""The product on the local host for a benchmark: an ``intake dev`` child process with the
repository's own host.json, a settings file of its own and a free port; SIGTERM at the end
(running work finishes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
FUNCTION_KEY = "bench-function-key"


@contextmanager
def product_host(env: dict[str, str], work: Path) -> Iterator[str]:
    """Run ``function_app`` with these app settings; yields the base URL (``.../api``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    settings = work / "local.settings.json"
    settings.write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {"FUNCTIONS_WORKER_RUNTIME": "python", **env},
                "DevHost": {"FunctionKeys": {"default": FUNCTION_KEY}, "MasterKey": "bench"},
            }
        )
    )
    with (work / "host.log").open("ab") as log:
        args = [sys.executable, "-m", "intake_cli", "dev", "--root", str(REPO)]
        args += ["--settings", str(settings), "--port", str(port)]
        process = subprocess.Popen(
            args,
            cwd=REPO,
            env={k: v for k, v in os.environ.items() if k not in env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the host did not start; see {work / 'host.log'}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
