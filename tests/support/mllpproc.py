"""Runs ``intake mllp`` in a child process, as an operator would, on a port it picks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.hostproc import REPO

_LISTENING = re.compile(r"mllp: listening on [^:\s]+:(\d+) for ([a-z0-9-]+)")


@dataclass
class MllpProcess:
    """One listener process (``listening``: each listener's partner and port)."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0, listeners: int = 1) -> MllpProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from intake_cli.main import main; main()",
                    "mllp",
                    *self.args,
                    "--settings",
                    str(self.log_path.with_suffix(".none.json")),
                ],
                cwd=REPO,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"listener exited {self.process.returncode}:\n{self.logs()}")
            if len(self.listening) >= listeners:
                return self
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"listener did not start in {timeout}s:\n{self.logs()}")

    @property
    def listening(self) -> list[tuple[str, int]]:
        """(partner, port) of each listener, in the order configured."""
        return [(m[2], int(m[1])) for m in _LISTENING.finditer(self.logs())]

    @property
    def port(self) -> int:
        return self.listening[0][1]

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"listener did not stop in {timeout}s:\n{self.logs()}") from None
