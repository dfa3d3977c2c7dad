"""Azurite for a benchmark: started unless one is already listening, and a fresh storage
prefix, so a run never mixes with another's data."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devhost.azurite import DEFAULT_PORTS, ports_listening, start_azurite

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def bench_storage(name: str) -> Iterator[int | None]:
    """Point the app's settings at Azurite with a fresh prefix for the ``with`` block; yields
    the pid of the Azurite this started (None when one was running already)."""
    azurite = None
    if not ports_listening("127.0.0.1", DEFAULT_PORTS):
        work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        azurite = start_azurite(REPO, work / "azurite", log_file=work / "azurite.log")
    try:
        from shared.platform.settings import development_connection_string

        os.environ.update(
            {
                "AzureWebJobsStorage": development_connection_string(),
                "INTAKE_STORAGE_PREFIX": "b" + secrets.token_hex(5),
            }
        )
        yield azurite.process.pid if azurite is not None else None
    finally:
        if azurite is not None:
            azurite.stop()
