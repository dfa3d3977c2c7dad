"""The product on the local host as a child process (``intake dev``), for the demo and the
benchmarks: a settings file of its own (app settings, function key), a free port, and a
SIGTERM at the end, so running work finishes. The MLLP listener (``intake mllp``) the same
way, on a port it picks."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devhost.private_files import write_private

__all__ = [
    "free_port",
    "start_child_host",
    "start_child_listener",
    "stop_child_host",
    "wait_healthy",
]

_LISTENING = re.compile(rb"mllp: listening on [^:\s]+:(\d+)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_child_host(
    root: Path, work: Path, values: dict[str, str], port: int, function_key: str
) -> subprocess.Popen[bytes]:
    """Start ``intake dev`` for the app in ``root`` with these app settings (the settings
    file decides: the same names in this process's environment are not passed on); its
    output goes to ``work/host.log``."""
    settings = work / "local.settings.json"
    write_private(
        settings,
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {"FUNCTIONS_WORKER_RUNTIME": "python", **values},
                "DevHost": {"FunctionKeys": {"default": function_key}, "MasterKey": "local"},
            }
        ),
    )
    args = [sys.executable, "-m", "intake_cli", "dev", "--root", str(root)]
    args += ["--settings", str(settings), "--port", str(port)]
    with (work / "host.log").open("ab") as log:
        return subprocess.Popen(
            args,
            cwd=root,
            env={k: v for k, v in os.environ.items() if k not in values},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_healthy(base_url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    """Whether ``GET {base_url}/health`` answered 200 before ``timeout`` (False at once if
    the host exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def stop_child_host(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM (the host lets running work finish), SIGKILL after ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_child_listener(
    root: Path, work: Path, values: dict[str, str], partner: str, timeout: float = 60
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``intake mllp`` on 127.0.0.1 for ``partner`` with these app settings; the
    process and the port it listens on (output in ``work/mllp.log``).

    Raises:
        RuntimeError: it did not start listening within ``timeout`` seconds.
    """
    args = [sys.executable, "-m", "intake_cli", "mllp", "--port", "0", "--host", "127.0.0.1"]
    args += ["--partner", partner, "--settings", str(work / "mllp.settings.none")]
    log_path = work / "mllp.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            args,
            cwd=root,
            env={**os.environ, **values},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        found = _LISTENING.search(log_path.read_bytes())
        if found:
            return process, int(found[1])
        time.sleep(0.05)
    stop_child_host(process)
    raise RuntimeError(f"the MLLP listener did not start; see {log_path}")
