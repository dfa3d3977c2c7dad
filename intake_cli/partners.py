"""``intake partners``: the operator's side of the trust model. Register partners with
their roles, the identifier systems they are the authority for, the systems their
Consents may speak for and the purposes of use they may state; register a person to a
partner; issue and revoke keys. Every change is an AuditEvent naming the operator."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from .options import settings_option

__all__ = ["partners"]

ROLES = ["ingest", "read", "admin", "population", "consent-source", "registry", "break-glass"]


@click.group()
def partners() -> None:
    """Partners: register them and what they may do, relate persons, manage keys."""


def _apply(settings: Path) -> None:
    from devhost.config import apply_values, load_local_settings

    apply_values(load_local_settings(settings))


def _directory(settings: Path) -> Any:
    from shared import wiring

    _apply(settings)
    return wiring.partners()


def _audit(
    action: Any, target: str, key_id: str | None = None, details: dict[str, str] | None = None
) -> None:
    """An AuditEvent for an operator's action, naming the operating-system user."""
    import getpass

    from shared import wiring
    from shared.security.audit import admin_audit_event

    details = {**({"key-id": key_id} if key_id else {}), **(details or {})}
    event = admin_audit_event(
        action, f"operator:{getpass.getuser()}", target, datetime.now(UTC), details or None
    )
    wiring.audit_log().write(event)


def _partner(**fields: Any) -> Any:
    from pydantic import ValidationError

    from shared.security import Partner

    try:
        return Partner(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.UsageError(problems) from exc


def _describe(partner: Any) -> dict[str, str]:
    """What an AuditEvent says a partner may do (systems and codes; no secrets, no PHI)."""
    return {
        "roles": ",".join(sorted(partner.roles)),
        "authorities": " ".join(sorted(partner.authorities)),
        "consent-systems": " ".join(sorted(partner.consent_systems)),
        "purposes": ",".join(sorted(partner.allowed_purposes())),
        "unmapped-types": partner.unmapped_types.value,
        "queue-intake": str(partner.queue_intake).lower(),
        "ccda-strict": str(partner.ccda_strict).lower(),
    }


@partners.command("add")
@click.argument("partner_id")
@click.option("--name", required=True, help="The organization's name.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(ROLES),
    default=["ingest"],
    show_default=True,
    help="Roles (repeatable).",
)
@click.option(
    "--time-zone",
    default=None,
    help="IANA zone of its times sent without an offset (unset: MSH-7's offset, else UTC).",
)
@click.option("--identifier", "identifiers", multiple=True, help="system|value it is known by.")
@click.option("--principal", "principals", multiple=True, help="Entra app id or object id.")
@click.option(
    "--authority",
    "authorities",
    multiple=True,
    help="An identifier system it assigns (its MRN OID): links across partners need it.",
)
@click.option(
    "--consent-system",
    "consent_systems",
    multiple=True,
    help="An identifier system whose patients its Consents speak for (consent-source, registry).",
)
@click.option(
    "--purpose",
    "purposes",
    multiple=True,
    help="A purpose of use it may state (v3 ActReason; default: its roles' own).",
)
@click.option(
    "--unmapped-types",
    type=click.Choice(["refuse", "store"]),
    default="refuse",
    show_default=True,
    help="HL7 v2 types we do not convert: refused (AR) or stored and reported.",
)
@click.option(
    "--queue-intake", is_flag=True, help="Internal producers may submit as it (intake-requests)."
)
@click.option(
    "--ccda-strict",
    is_flag=True,
    help="Refuse a C-CDA document whole when any part of it cannot be converted.",
)
@click.option("--no-key", is_flag=True, help="Do not issue an API key (Entra ID only).")
@settings_option
def partners_add(
    partner_id: str,
    name: str,
    roles: tuple[str, ...],
    time_zone: str | None,
    identifiers: tuple[str, ...],
    principals: tuple[str, ...],
    authorities: tuple[str, ...],
    consent_systems: tuple[str, ...],
    purposes: tuple[str, ...],
    unmapped_types: str,
    queue_intake: bool,
    ccda_strict: bool,
    no_key: bool,
    settings: Path,
) -> None:
    """Register (or replace) PARTNER_ID and print a new API key, shown this once."""
    from shared.platform.errors import IntakeError
    from shared.security import Role
    from shared.security.audit import AdminAction

    partner = _partner(
        id=partner_id,
        name=name,
        roles=frozenset(Role(r) for r in roles),
        time_zone=time_zone,
        identifiers=frozenset(identifiers),
        principals=frozenset(principals),
        authorities=frozenset(authorities),
        consent_systems=frozenset(consent_systems),
        purposes=frozenset(purposes),
        unmapped_types=unmapped_types,
        queue_intake=queue_intake,
        ccda_strict=ccda_strict,
    )
    directory = _directory(settings)
    try:
        directory.upsert(partner)
        _audit(AdminAction.PARTNER_UPSERT, f"Organization/{partner.id}", details=_describe(partner))
        issued = None if no_key else directory.issue_key(partner.id)
        if issued is not None:
            _audit(AdminAction.KEY_ISSUE, f"Organization/{partner.id}", issued.key_id)
        token = issued.token if issued else None
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"partner {partner.id}: roles {', '.join(sorted(partner.roles))}")
    if token:
        click.echo(f"API key (shown once): {token}")


def _changed(kept: Iterable[str], add: Iterable[str], remove: Iterable[str]) -> frozenset[str]:
    return (frozenset(kept) | frozenset(add)) - frozenset(remove)


@partners.command("update")
@click.argument("partner_id")
@click.option("--add-role", multiple=True, type=click.Choice(ROLES), help="Grant a role.")
@click.option("--remove-role", multiple=True, type=click.Choice(ROLES), help="Take a role away.")
@click.option("--add-authority", multiple=True, help="An identifier system it assigns.")
@click.option("--remove-authority", multiple=True, help="No longer its system.")
@click.option("--add-consent-system", multiple=True, help="A system its Consents speak for.")
@click.option("--remove-consent-system", multiple=True, help="No longer speaks for it.")
@click.option("--add-purpose", multiple=True, help="A purpose of use it may state.")
@click.option("--remove-purpose", multiple=True, help="A purpose it may no longer state.")
@click.option(
    "--unmapped-types",
    type=click.Choice(["refuse", "store"]),
    default=None,
    help="HL7 v2 types we do not convert: refused (AR) or stored and reported.",
)
@click.option(
    "--queue-intake/--no-queue-intake",
    default=None,
    help="Whether internal producers may submit as it (intake-requests).",
)
@click.option(
    "--ccda-strict/--no-ccda-strict",
    default=None,
    help="Whether a C-CDA document any part of which cannot convert is refused whole.",
)
@settings_option
def partners_update(
    partner_id: str,
    add_role: tuple[str, ...],
    remove_role: tuple[str, ...],
    add_authority: tuple[str, ...],
    remove_authority: tuple[str, ...],
    add_consent_system: tuple[str, ...],
    remove_consent_system: tuple[str, ...],
    add_purpose: tuple[str, ...],
    remove_purpose: tuple[str, ...],
    unmapped_types: str | None,
    queue_intake: bool | None,
    ccda_strict: bool | None,
    settings: Path,
) -> None:
    """Change what PARTNER_ID may do; takes effect on its next request or message."""
    from shared.platform.errors import IntakeError
    from shared.security import Role
    from shared.security.audit import AdminAction

    directory = _directory(settings)
    try:
        before = directory.get(partner_id)
        if before is None:
            raise click.ClickException(f"no partner {partner_id}")
        after = _partner(
            **{
                **before.model_dump(),
                "roles": frozenset(Role(r) for r in _changed(before.roles, add_role, remove_role)),
                "authorities": _changed(before.authorities, add_authority, remove_authority),
                "consent_systems": _changed(
                    before.consent_systems, add_consent_system, remove_consent_system
                ),
                "purposes": _changed(before.purposes, add_purpose, remove_purpose),
                "unmapped_types": unmapped_types or before.unmapped_types,
                "queue_intake": before.queue_intake if queue_intake is None else queue_intake,
                "ccda_strict": before.ccda_strict if ccda_strict is None else ccda_strict,
            }
        )
        directory.upsert(after)
        _audit(AdminAction.PARTNER_UPSERT, f"Organization/{partner_id}", details=_describe(after))
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from exc
    _show(after)


def _show(partner: Any) -> None:
    click.echo(f"partner {partner.id} ({partner.name})")
    for label, values in (
        ("roles", sorted(partner.roles)),
        ("authorities", sorted(partner.authorities)),
        ("consent systems", sorted(partner.consent_systems)),
        ("purposes", sorted(partner.allowed_purposes())),
        ("identifiers", sorted(partner.identifiers)),
        ("principals", sorted(partner.principals)),
        ("unmapped HL7 types", [partner.unmapped_types.value]),
        ("queue intake", ["yes" if partner.queue_intake else "no"]),
        ("C-CDA strict", ["yes" if partner.ccda_strict else "no"]),
    ):
        click.echo(f"  {label}: {', '.join(values) or '-'}")


@partners.command("show")
@click.argument("partner_id")
@settings_option
def partners_show(partner_id: str, settings: Path) -> None:
    """What PARTNER_ID may do: roles, authorities, consent systems, purposes."""
    from shared.platform.errors import IntakeError

    try:
        partner = _directory(settings).get(partner_id)
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from exc
    if partner is None:
        raise click.ClickException(f"no partner {partner_id}")
    _show(partner)


def _relation(partner_id: str, patient_id: str, settings: Path, remove: bool) -> None:
    import re

    from shared import wiring
    from shared.platform.errors import IntakeError
    from shared.security.audit import AdminAction

    if not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", patient_id):
        raise click.UsageError("PATIENT_ID is a record id (Patient/<id> without 'Patient/')")
    directory = _directory(settings)
    try:
        if directory.get(partner_id) is None:
            raise click.ClickException(f"no partner {partner_id}")
        index = wiring.person_index()
        if remove:
            if not index.unrelate(patient_id, partner_id):
                raise click.ClickException(
                    f"Patient/{patient_id} is not registered to {partner_id}"
                )
        else:
            index.relate(patient_id, partner_id, datetime.now(UTC))
        action = AdminAction.PARTNER_UNRELATE if remove else AdminAction.PARTNER_RELATE
        _audit(action, f"Patient/{patient_id}", details={"partner": partner_id})
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from exc
    verb = "no longer registered to" if remove else "registered to"
    click.echo(f"the person of Patient/{patient_id} is {verb} {partner_id}")


@partners.command("relate")
@click.argument("partner_id")
@click.argument("patient_id")
@settings_option
def partners_relate(partner_id: str, patient_id: str, settings: Path) -> None:
    """Register the person of PATIENT_ID (a record id) to PARTNER_ID: its read role then
    reaches every linked record of that person (a care relationship the data does not
    show, e.g. a new referral)."""
    _relation(partner_id, patient_id, settings, remove=False)


@partners.command("unrelate")
@click.argument("partner_id")
@click.argument("patient_id")
@settings_option
def partners_unrelate(partner_id: str, patient_id: str, settings: Path) -> None:
    """Remove a registration ``relate`` made."""
    _relation(partner_id, patient_id, settings, remove=True)


@partners.command("list")
@settings_option
def partners_list(settings: Path) -> None:
    """Every partner with its roles and keys (ids, use and revocation; never secrets)."""
    from shared.platform.errors import IntakeError

    directory = _directory(settings)
    try:
        found, keys = directory.list(), directory.api_keys()
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from exc
    for partner in found:
        line = f"{partner.id}\t{partner.name}\troles={','.join(sorted(partner.roles))}"
        if partner.authorities:
            line += f"\tauthorities={','.join(sorted(partner.authorities))}"
        click.echo(line)
        for key in (k for k in keys if k.partner == partner.id):
            used = key.last_used.isoformat(timespec="seconds") if key.last_used else "never"
            state = "revoked" if key.revoked else "active"
            click.echo(f"  key {key.key_id}\t{state}\tlast used {used}")


@partners.command("revoke-key")
@click.argument("key_id")
@settings_option
def partners_revoke_key(key_id: str, settings: Path) -> None:
    """Revoke the API key KEY_ID (the 16 hex digits after fik_) for good."""
    from shared.platform.errors import IntakeError
    from shared.security.audit import AdminAction

    key_id = key_id.removeprefix("fik_").split("_")[0]
    try:
        revoked = _directory(settings).revoke_key(key_id)
        if revoked:
            _audit(AdminAction.KEY_REVOKE, f"Organization/{revoked}", key_id)
    except IntakeError as exc:
        raise click.ClickException(str(exc)) from exc
    if not revoked:
        raise click.ClickException(f"no key {key_id}")
    click.echo(f"key {key_id} revoked")
