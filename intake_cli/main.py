"""``intake``: one entry point for developers and operators."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import click

from shared.platform.names import Queue, Setting

from .options import root_option, settings_option
from .partners import partners

__all__ = ["main"]


def _logging(verbose: bool) -> None:
    import os

    from shared.platform.logs import configure_logging

    configure_logging(json_lines=os.environ.get(Setting.LOG_FORMAT) == "json", verbose=verbose)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
def main(verbose: bool) -> None:
    """fhir-intake: partner data in, clean FHIR R4 out."""
    _logging(verbose)


main.add_command(partners)


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
@click.option(
    "--timeout",
    type=float,
    default=180.0,
    show_default=True,
    help="Seconds to wait for each phase before giving up.",
)
def demo(root: Path, timeout: float) -> None:
    """Run the whole product once on fresh storage and check what comes out (exit 0 or 1)."""
    from .demo import run_demo

    sys.exit(run_demo(root.resolve(), timeout=timeout))


@main.command()
@click.option("--port", type=int, default=None, help="TCP port to listen on (2575 is usual).")
@click.option("--partner", "partner_id", default=None, help="The partner every frame is from.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to bind.")  # noqa: S104
@click.option("--tls-cert", type=click.Path(path_type=Path, exists=True), help="PEM chain.")
@click.option("--tls-key", type=click.Path(path_type=Path, exists=True), help="PEM key.")
@click.option(
    "--tls-client-ca",
    type=click.Path(path_type=Path, exists=True),
    help="Require sender certificates signed by this CA.",
)
@click.option("--enhanced", is_flag=True, help="Enhanced-mode ACKs for every message.")
@click.option(
    "--max-bytes", type=int, default=None, help="Frame size limit [INTAKE_HTTP_MAX_BYTES]."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help='JSON {"listeners": [{"port": ..., "partner": ...}, ...]} instead of the options.',
)
@settings_option
def mllp(
    port: int | None,
    partner_id: str | None,
    host: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_client_ca: Path | None,
    enhanced: bool,
    max_bytes: int | None,
    config_file: Path | None,
    settings: Path,
) -> None:
    """Listen for HL7 v2 over MLLP and submit each message as a partner (beside the app)."""
    from pydantic import ValidationError

    from devhost.config import apply_values, load_local_settings
    from mllp_listener.config import ListenerConfig, load_listeners
    from mllp_listener.run import run_listeners
    from shared.platform.errors import ConfigurationError

    if settings.exists():
        apply_values(load_local_settings(settings))
    try:
        if config_file is not None:
            listeners = load_listeners(config_file)
        elif port is None or partner_id is None:
            raise click.UsageError("give --port and --partner, or --config")
        else:
            listeners = [
                ListenerConfig(
                    port=port,
                    partner=partner_id,
                    host=host,
                    tls_cert=tls_cert,
                    tls_key=tls_key,
                    tls_client_ca=tls_client_ca,
                    enhanced=enhanced,
                    max_bytes=max_bytes,
                )
            ]
    except (ValueError, ValidationError) as exc:
        raise click.ClickException(str(exc)) from exc

    def ready(servers: list[Any]) -> None:
        for server, config in zip(servers, listeners, strict=True):
            click.echo(f"mllp: listening on {config.host}:{server.port} for {config.partner}")

    try:
        asyncio.run(run_listeners(listeners, ready))
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot listen: {exc.strerror or exc}") from exc


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
    from shared import wiring
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
    type=click.Choice(["auto", "hl7v2", "fhir", "csv", "ccda"]),
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
    default=None,
    help="IANA time zone for times sent without an offset (unset: MSH-7's offset, else UTC).",
)
def convert(file: BinaryIO, fmt: str, mapping: str | None, partner: str, zone: str | None) -> None:
    """Convert FILE (or - for stdin) to a FHIR R4 transaction Bundle, offline.

    Prints the Bundle and exits 0; prints the OperationOutcome and exits 2 when the input
    is rejected. Records rejected inside an accepted file are listed on stderr.
    """
    import json
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from shared.normalize import NormalizationError, json_codec
    from shared.normalize.context import ConversionContext
    from shared.normalize.models import PayloadFormat
    from shared.normalize.service import convert_payload

    try:
        ctx = ConversionContext(partner=partner, zone=ZoneInfo(zone) if zone else None)
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
    click.echo(json_codec.dumps(result.bundle, indent=2))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--url", help="API base URL [default: from .intake/dev.json].")
@click.option("--key", help="Partner API key [default: from .intake/dev.json].")
@click.option("--function-key", help="Function key [default: from .intake/dev.json].")
@click.option("--format", "fmt", type=click.Choice(["hl7v2", "fhir", "ndjson", "csv", "ccda"]))
@click.option("--mapping", help="CSV mapping name.")
@click.option(
    "--drop-over",
    type=int,
    default=8 * 1024 * 1024,
    show_default=True,
    help="Files larger than this many bytes are uploaded as batch files instead of HTTP.",
)
@click.option(
    "--block-size",
    type=click.IntRange(min=1024, max=100 * 1024 * 1024),
    default=8 * 1024 * 1024,
    show_default=True,
    help="Batch files larger than this go up in blocks of this many bytes.",
)
def submit(
    paths: tuple[Path, ...],
    url: str | None,
    key: str | None,
    function_key: str | None,
    fmt: str | None,
    mapping: str | None,
    drop_over: int,
    block_size: int,
) -> None:
    """Send files (or every file in folders) and print what became of each.

    Small files go to POST /ingest (the ingestion id is printed). Large ones are batch
    uploads: POST /ingest/uploads answers a short-lived URL for one blob in the caller's
    ingest-drop folder, and the file is PUT there with it (no storage credentials
    needed); the drop stage splits it and reports on it.
    """
    import httpx

    from intake_cli.client import ApiTarget, UploadFailedError, content_type_for

    target = ApiTarget.resolve(url, key, function_key)
    files = [
        p
        for path in paths
        for p in ([path] if path.is_file() else sorted(path.rglob("*")))
        if p.is_file()
    ]
    failures = 0
    with (
        httpx.Client(timeout=60) as client,
        click.progressbar(files, label="Submitting", file=sys.stderr, show_pos=True) as bar,
    ):
        for path in bar:
            if path.stat().st_size > drop_over:
                try:
                    blob = _upload(client, target, path, fmt, mapping, block_size)
                except UploadFailedError as exc:
                    failures += 1
                    click.echo(f"{path}\tREFUSED {exc.message}", err=True)
                    continue
                click.echo(f"{path}\tuploaded as ingest-drop/{blob}")
                continue
            headers = {**target.headers(), "Content-Type": content_type_for(path, fmt)}
            if path.suffix == ".gz":
                headers["Content-Encoding"] = "gzip"
            params = {"mapping": mapping} if mapping else None
            response = client.post(
                f"{target.base_url}/ingest",
                content=path.read_bytes(),
                headers=headers,
                params=params,
            )
            if response.status_code == 202:
                click.echo(f"{path}\t{response.json()['id']}")
            else:
                failures += 1
                reason = response.json().get("issue", [{}])[0].get("diagnostics", response.text)
                click.echo(f"{path}\tREFUSED {response.status_code}: {reason}", err=True)
    sys.exit(1 if failures else 0)


def _upload(
    client: Any, target: Any, path: Path, fmt: str | None, mapping: str | None, block_size: int
) -> str:
    """A batch upload of one file: a URL from the API, then the file PUT to storage with it
    (a client of its own: the partner's keys never go to storage); the blob's name."""
    import httpx

    from intake_cli.client import content_type_for, put_file, request_upload

    issued = request_upload(client, target.base_url, target.headers(), path.name)
    with httpx.Client(timeout=300) as storage, path.open("rb") as data:
        put_file(
            storage,
            issued["url"],
            data,
            path.stat().st_size,
            content_type_for(path, fmt),
            mapping,
            block_size,
        )
    return str(issued["blob"])


@main.command()
@click.argument("ingestion_id")
@click.option("--url", help="API base URL [default: from .intake/dev.json].")
@click.option("--key", help="Partner API key [default: from .intake/dev.json].")
@click.option("--function-key", help="Function key [default: from .intake/dev.json].")
def status(ingestion_id: str, url: str | None, key: str | None, function_key: str | None) -> None:
    """Print an ingestion's journey."""
    import json

    import httpx

    from intake_cli.client import ApiTarget

    target = ApiTarget.resolve(url, key, function_key)
    response = httpx.get(
        f"{target.base_url}/ingest/{ingestion_id}", headers=target.headers(), timeout=30
    )
    click.echo(json.dumps(response.json(), indent=2))
    sys.exit(0 if response.status_code == 200 else 1)


@main.command()
@click.argument("queue", type=click.Choice([*(q.value for q in Queue), "deliveries"]))
@click.option("--limit", type=int, help="Move at most this many.")
@click.option("--subscription", help="deliveries: the subscription whose dead letters to send.")
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%d"]),
    help="deliveries: only those dead-lettered at or after this time (UTC if no offset).",
)
@settings_option
def replay(
    queue: str,
    limit: int | None,
    subscription: str | None,
    since: datetime | None,
    settings: Path,
) -> None:
    """Move messages from QUEUE-poison back to QUEUE after the cause is fixed; or, with
    ``deliveries --subscription ID``, deliver a subscription's dead letters again."""
    from devhost.config import apply_values, load_local_settings
    from shared import wiring
    from shared.intake.operations import replay_poison
    from shared.notify import replay_dead_letters
    from shared.platform import Queue
    from shared.platform.errors import IntakeError

    apply_values(load_local_settings(settings))
    if queue == "deliveries":
        if not subscription:
            raise click.UsageError("replay deliveries needs --subscription ID")
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        try:
            queued = replay_dead_letters(
                subscription,
                wiring.dead_letters(),
                wiring.deliveries(),
                wiring.envelope_sender(),
                since,
            )
        except IntakeError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{queued} dead-lettered deliveries of {subscription} queued again")
        return
    try:
        moved = replay_poison(wiring.storage(), Queue(queue), limit)
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{moved} message(s) moved from {queue}-poison to {queue}")


@main.command()
@click.argument("name")
@settings_option
def reprocess(name: str, settings: Path) -> None:
    """Process the dropped file NAME (partner/path in ingest-drop) again."""
    from devhost.config import apply_values, load_local_settings
    from shared import wiring
    from shared.intake.operations import reprocess_drop
    from shared.platform.errors import IntakeError

    apply_values(load_local_settings(settings))
    try:
        event = reprocess_drop(wiring.storage(), name)
    except (IntakeError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"announced {name} again (event {event})")


@main.group()
def consent() -> None:
    """Consent decisions."""


@consent.command("evaluate")
@click.option(
    "--consent",
    "consent_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A Consent resource, or a Bundle of them (repeatable).",
)
@click.option("--action", required=True, help="collect, access, use or disclose.")
@click.option(
    "--purpose",
    default="TREAT",
    show_default=True,
    help="v3 ActReason purpose of use (CODE or system|CODE).",
)
@click.option("--actor", "actors", multiple=True, help="Who asks: TYPE/ID or system|value.")
@click.option("--actor-role", help="The actor's role (v3 ParticipationType code).")
@click.option(
    "--resource",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The FHIR resource asked about (default: the record in general).",
)
@click.option("--at", help="Decide at this ISO date/dateTime [default: now].")
@click.option("--policy", default="opt-out", show_default=True, help="opt-in or opt-out.")
def consent_evaluate(
    consent_files: tuple[Path, ...],
    action: str,
    purpose: str,
    actors: tuple[str, ...],
    actor_role: str | None,
    resource: Path | None,
    at: str | None,
    policy: str,
) -> None:
    """Decide one request against consents, offline; print the decision as JSON.

    Exits 0 for permit and for deny; exits 2 with an OperationOutcome on invalid input.
    """
    import json

    from shared.consent import ConsentInputError, ConsentRequest, Policy, decide_consent, inputs
    from shared.consent.resources import describe_resource

    try:
        consents = [
            c for path in consent_files for c in inputs.load_consents(path.read_bytes(), str(path))
        ]
        mode = inputs.parse_policy_mode(policy)
        data = None
        if resource is not None:
            data = describe_resource(
                inputs.load_resource(resource.read_bytes(), str(resource)), UTC
            )
        request = ConsentRequest(
            action=inputs.parse_action(action),
            at=inputs.parse_instant(at),
            purpose=inputs.parse_purpose(purpose),
            actor=inputs.parse_actor(actors, actor_role),
            data=data,
        )
    except ConsentInputError as exc:
        click.echo(json.dumps(exc.to_operation_outcome(), indent=2))
        sys.exit(2)
    decision = decide_consent(consents, request, Policy(mode=mode))
    click.echo(json.dumps(decision.to_json(), indent=2))
