"""``intake``: one entry point for developers and operators."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import BinaryIO

import click

__all__ = ["main"]

root_option = click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    default=".",
    show_default=True,
    help="Folder with host.json and function_app.py.",
)
settings_option = click.option(
    "--settings",
    type=click.Path(path_type=Path),
    default="local.settings.json",
    show_default=True,
    help="local.settings.json to read app settings (and the host's keys) from.",
)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="[%(asctime)s] %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("azure", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def main(verbose: bool) -> None:
    """fhir-intake: partner data in, clean FHIR R4 out."""
    _logging(verbose)


@main.command()
@root_option
@click.option(
    "--app",
    "app_target",
    default="function_app:app",
    show_default=True,
    help="module:attribute of the FunctionApp.",
)
@click.option(
    "--port", type=int, default=None, help="HTTP port [default: 7071 or Host.LocalHttpPort]."
)
@click.option(
    "--host-json", type=click.Path(path_type=Path), default="host.json", show_default=True
)
@settings_option
@click.option("--no-blob-events", is_flag=True, help="Do not emulate Event Grid blob events.")
def dev(
    root: Path,
    app_target: str,
    port: int | None,
    host_json: Path,
    settings: Path,
    no_blob_events: bool,
) -> None:
    """Run the Function App on the local host (storage must be reachable)."""
    from devhost.catalog import CatalogError
    from devhost.config import HostConfigError
    from devhost.host import HostConfig, LocalHost
    from shared.platform.errors import ConfigurationError

    config = HostConfig(
        root=root.resolve(), app=app_target, host_json=host_json, local_settings=settings, port=port
    )
    if no_blob_events:
        config.blob_events = {}
    host = LocalHost(config)

    async def run() -> None:
        host.install_signal_handlers()
        await host.run()

    try:
        asyncio.run(run())
    except (CatalogError, HostConfigError, ConfigurationError) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot listen: {exc.strerror}") from exc


@main.command()
@root_option
@click.option("--port", type=int, default=7071, show_default=True, help="HTTP port of the host.")
@click.option(
    "--storage-port",
    type=int,
    default=10000,
    show_default=True,
    help="Azurite's blob port (queue and table use the next two).",
)
def run(root: Path, port: int, storage_port: int) -> None:
    """Start Azurite and the host, provision storage, register the demo partner."""
    from devhost.azurite import AzuriteError
    from devhost.catalog import CatalogError
    from devhost.config import HostConfigError
    from devhost.stack import run_stack
    from shared.platform.errors import IntakeError

    try:
        sys.exit(run_stack(root.resolve(), port, storage_port))
    except (AzuriteError, CatalogError, HostConfigError, IntakeError) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot start: {exc.strerror or exc}") from exc


@main.command()
@root_option
def init(root: Path) -> None:
    """Create local.settings.json with fresh function keys (keeps an existing one)."""
    from devhost.stack import ensure_local_settings

    click.echo(ensure_local_settings(root.resolve()))


@main.command()
@settings_option
def provision(settings: Path) -> None:
    """Create every container, queue and table on the configured storage account."""
    from devhost.config import apply_values, load_local_settings
    from shared.platform import wiring
    from shared.platform.errors import IntakeError
    from shared.platform.provision import provision_storage

    apply_values(load_local_settings(settings))
    try:
        count = provision_storage(wiring.storage())
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{count} containers, queues and tables ready")


@main.command()
@click.argument("file", type=click.File("rb"))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "hl7v2", "fhir", "csv"]),
    default="auto",
    show_default=True,
)
@click.option("--mapping", help="CSV mapping name (rpm-vitals, lab-results, ...).")
@click.option(
    "--partner",
    default="local",
    show_default=True,
    help="Partner id: scopes local identifiers and ids.",
)
@click.option(
    "--tz",
    "zone",
    default="UTC",
    show_default=True,
    help="IANA time zone for times sent without an offset.",
)
def convert(file: BinaryIO, fmt: str, mapping: str | None, partner: str, zone: str) -> None:
    """Convert FILE (or - for stdin) to a FHIR R4 transaction Bundle, offline.

    Prints the Bundle and exits 0; prints the OperationOutcome and exits 2 when the input
    is rejected. Records rejected inside an accepted file are listed on stderr.
    """
    import json
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from shared.normalize import NormalizationError
    from shared.normalize.context import ConversionContext
    from shared.normalize.models import PayloadFormat
    from shared.normalize.service import convert_payload

    try:
        ctx = ConversionContext(partner=partner, zone=ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise click.BadParameter(f"unknown time zone {zone!r}", param_hint="--tz") from exc
    try:
        result = convert_payload(
            file.read(), ctx, None if fmt == "auto" else PayloadFormat(fmt), mapping=mapping
        )
    except NormalizationError as exc:
        click.echo(json.dumps(exc.to_operation_outcome(), indent=2))
        sys.exit(2)
    for rejection in result.rejected:
        first = rejection.issues[0]
        click.echo(
            f"rejected {rejection.location}: {first.location}: {first.diagnostics}", err=True
        )
    click.echo(json.dumps(result.bundle, indent=2))
