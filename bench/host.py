"""The product on the local host for a benchmark (``intake_cli.child_host``), with the
repository's own host.json."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from intake_cli.child_host import free_port, start_child_host, stop_child_host, wait_healthy

REPO = Path(__file__).resolve().parents[1]
FUNCTION_KEY = "bench-function-key"


def intake_only_with_partner(
    downstream: tuple[str, ...], partner: str
) -> tuple[dict[str, str], str]:
    """App settings for a run whose figure is intake's own (``downstream`` functions off,
    storage as ``bench_storage`` set it), storage provisioned and ``partner`` registered:
    the settings and its API key."""
    from shared import wiring
    from shared.platform.names import Setting, Table
    from shared.platform.provision import provision_storage
    from shared.security import Partner, TablePartnerDirectory

    env = {
        Setting.STORAGE: os.environ[Setting.STORAGE],
        Setting.STORAGE_PREFIX: os.environ[Setting.STORAGE_PREFIX],
        "INTAKE_ENVIRONMENT": "development",
        "INTAKE_SWEEP_SCHEDULE": "0 */5 * * * *",
        **{f"AzureWebJobs.{name}.Disabled": "true" for name in downstream},
    }
    os.environ.update(env)
    wiring.reset_caches()
    provision_storage(wiring.storage())
    directory = TablePartnerDirectory(wiring.storage().table_client(Table.PARTNERS))
    directory.upsert(Partner(id=partner, name=partner.title()))
    return env, directory.issue_key(partner).token


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
