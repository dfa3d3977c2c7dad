"""The product on the local host for a benchmark (``intake_cli.child_host``), with the
repository's own host.json."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from intake_cli.child_host import free_port, start_child_host, stop_child_host, wait_healthy

REPO = Path(__file__).resolve().parents[1]
FUNCTION_KEY = "bench-function-key"


@contextmanager
def product_host(env: dict[str, str], work: Path) -> Iterator[str]:
    """Run ``function_app`` with these app settings; yields the base URL (``.../api``)."""
    with product_host_process(env, work) as (base, _):
        yield base


@contextmanager
def product_host_process(env: dict[str, str], work: Path) -> Iterator[tuple[str, int]]:
    """``product_host``, yielding the host's pid too (to count its CPU)."""
    port = free_port()
    process = start_child_host(REPO, work, env, port, FUNCTION_KEY)
    base = f"http://127.0.0.1:{port}/api"
    try:
        if not wait_healthy(base, process):
            raise RuntimeError(f"the host did not start; see {work / 'host.log'}")
        yield base, process.pid
    finally:
        stop_child_host(process, timeout=60)
