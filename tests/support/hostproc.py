"""Runs the local host in a child process, as a user would, and stops it with a signal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class HostProcess:
    """One `intake dev` child process."""

    root: Path
    app: str
    env: dict[str, str]
    log_path: Path
    host_json: Path = Path("host.json")
    settings: Path | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> HostProcess:
        args = [
            sys.executable,
            "-c",
            "from intake_cli.main import main; main()",
            "dev",
            "--root",
            str(self.root),
            "--app",
            self.app,
            "--port",
            str(self.port),
            "--host-json",
            str(self.host_json),
        ]
        if self.settings is not None:
            args += ["--settings", str(self.settings)]
        before = len(self.logs())  # a restart appends to the same log
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                cwd=REPO,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"host exited with {self.process.returncode}:\n{self.logs()}")
            if "Functions:" in self.logs()[before:]:
                return self
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"host did not start in {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def send(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"host did not stop within {timeout}s:\n{self.logs()}") from None

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)  # type: ignore[arg-type]


def write_settings(path: Path, function_key: str, master_key: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {
                    "FUNCTIONS_WORKER_RUNTIME": "python",
                    "INTAKE_SWEEP_SCHEDULE": "*/2 * * * * *",
                },
                "DevHost": {"FunctionKeys": {"default": function_key}, "MasterKey": master_key},
            }
        )
    )
    return path


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll until predicate() returns a truthy value; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
