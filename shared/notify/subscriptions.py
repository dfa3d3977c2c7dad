"""Managing subscriptions: create (the secret is shown once), read, change, delete, rotate.

A partner manages its own subscriptions; the admin role manages anyone's. A subscription
another partner owns answers exactly like one that does not exist. Endpoints are checked
(scheme, and every address they resolve to) when set, and again on every delivery.

Within the trust model a subscription never reaches further than its owner's reads:
which changes it hears of is decided per change by the owner's read scope
(``notify/stage``), so ``Patient`` or ``Observation?code=...`` from a read-role partner
follows the persons it has a relationship with (an encounter-notification feed for its
panel), and only the population role (or an operator) hears of everyone. The
subscription's purpose must be one the owner is registered for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from shared.consent.vocabulary import covered_by
from shared.platform.ports import AuditLog
from shared.platform.secrets import SecretStore
from shared.security.audit import AdminAction, admin_audit_event
from shared.security.models import Partner, Role

from .criteria import parse_criteria
from .endpoints import Resolver, parse_endpoint, resolve_endpoint, system_resolver
from .errors import (
    EndpointRefusedError,
    SubscriptionForbiddenError,
    SubscriptionInvalidError,
    SubscriptionNotFoundError,
)
from .models import (
    Content,
    Event,
    Format,
    Subscription,
    SubscriptionStatus,
    Topic,
    new_subscription_id,
    secret_name,
)
from .ports import SubscriptionStore
from .signing import new_secret

__all__ = ["SubscriptionChange", "SubscriptionService"]

MAX_OVERLAP = timedelta(days=7)


class SubscriptionChange(BaseModel):
    """What a caller may set on a subscription (POST: all that apply; PATCH: any)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    criteria: str | None = Field(default=None, min_length=1, max_length=1024)
    events: frozenset[Event] | None = None
    topics: frozenset[Topic] | None = None
    endpoint: str | None = Field(default=None, min_length=1, max_length=2048)
    content: Content | None = None
    format: Format | None = None
    purpose: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9]{1,31}$")
    owner: str | None = Field(default=None, min_length=1, max_length=64)  # admin only
    status: SubscriptionStatus | None = None  # PATCH: active or off

    @classmethod
    def read(cls, body: bytes) -> SubscriptionChange:
        """Parse a request body.

        Raises:
            SubscriptionInvalidError: not JSON, or a field that is unknown or invalid.
        """
        try:
            return cls.model_validate_json(body or b"{}")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors(include_input=False)
            )
            raise SubscriptionInvalidError(f"invalid subscription: {problems}") from exc


class SubscriptionService:
    """The subscription API's logic, over the store and the secret store."""

    def __init__(
        self,
        store: SubscriptionStore,
        secrets: SecretStore,
        partners: Callable[[str], Partner | None],
        *,
        development: bool,
        resolver: Resolver = system_resolver,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        event_count: Callable[[str], int] = lambda _: 0,
        audit: AuditLog | None = None,
    ) -> None:
        self._event_count = event_count
        self._audit = audit
        self._store = store
        self._secrets = secrets
        self._partners = partners
        self._development = development
        self._resolver = resolver
        self._clock = clock

    def _check(self, sub: Subscription) -> None:
        criteria = parse_criteria(sub.criteria)
        owner = self._partners(sub.owner)
        if owner is None or not covered_by(sub.purpose, owner.allowed_purposes()):
            raise SubscriptionForbiddenError(
                f"purpose: {sub.purpose} is not a purpose the owner is registered for"
            )
        if sub.topics and criteria.resource_type != "Encounter":
            raise SubscriptionInvalidError(
                "topics are about Encounters: criteria must be Encounter"
            )
        if not sub.topics and not sub.events:
            raise SubscriptionInvalidError("give events (create, update, delete) or topics")
        try:
            endpoint = parse_endpoint(sub.endpoint, development=self._development)
            resolve_endpoint(endpoint, self._resolver)
        except EndpointRefusedError as exc:
            raise SubscriptionInvalidError(f"endpoint: {exc}") from exc

    def _audited(self, action: AdminAction, caller: Partner, subscription_id: str) -> None:
        if self._audit is not None:
            self._audit.write(
                admin_audit_event(
                    action, caller.id, f"Subscription/{subscription_id}", self._clock()
                )
            )

    def _visible(self, caller: Partner, subscription_id: str) -> Subscription:
        sub = self._store.get(subscription_id)
        if sub is None or (Role.ADMIN not in caller.roles and sub.owner != caller.id):
            raise SubscriptionNotFoundError(f"no subscription {subscription_id}")
        return sub

    def create(
        self, caller: Partner, change: SubscriptionChange, base_url: str
    ) -> tuple[Subscription, str]:
        """A new subscription and its signing secret (shown this once).

        Raises:
            SubscriptionInvalidError: a missing or invalid field, an endpoint we refuse.
            StorageUnavailableError, SecretsUnavailableError: try again.
        """
        owner = change.owner or caller.id
        if owner != caller.id and Role.ADMIN not in caller.roles:
            raise SubscriptionInvalidError("owner: only the admin role subscribes for others")
        if owner != caller.id and self._partners(owner) is None:
            raise SubscriptionInvalidError(f"owner: no partner {owner}")
        if not change.endpoint:
            raise SubscriptionInvalidError("endpoint is required")
        if change.status is SubscriptionStatus.ERROR:
            raise SubscriptionInvalidError("status: a new subscription is active or off")
        now = self._clock()
        fields: dict[str, Any] = {
            k: v for k, v in change.model_dump(exclude_none=True).items() if k not in {"owner"}
        }
        if "criteria" not in fields and change.topics:
            fields["criteria"] = "Encounter"
        if "criteria" not in fields:
            raise SubscriptionInvalidError("criteria is required (e.g. Observation?code=...)")
        try:
            sub = Subscription(
                id=new_subscription_id(),
                owner=owner,
                base_url=base_url,
                created=now,
                updated=now,
                **fields,
            )
        except ValidationError as exc:
            raise SubscriptionInvalidError("invalid subscription") from exc
        self._check(sub)
        secret = new_secret()
        self._secrets.set(secret_name(sub.id, sub.secret_generation), secret)
        self._store.add(sub)
        self._audited(AdminAction.SUBSCRIPTION_CREATE, caller, sub.id)
        return sub, secret

    def describe(self, caller: Partner, subscription_id: str) -> dict[str, object]:
        """The API's view of one subscription, with its event count so far.

        Raises:
            SubscriptionNotFoundError: none, or another partner's.
        """
        sub = self._visible(caller, subscription_id)
        return {**sub.public(), "eventCount": self._event_count(sub.id)}

    def list(self, caller: Partner) -> list[Subscription]:
        """The caller's subscriptions (every one, for the admin role)."""
        return self._store.list(None if Role.ADMIN in caller.roles else caller.id)

    def get(self, caller: Partner, subscription_id: str) -> Subscription:
        """One subscription the caller may see.

        Raises:
            SubscriptionNotFoundError: none, or another partner's.
        """
        return self._visible(caller, subscription_id)

    def update(
        self, caller: Partner, subscription_id: str, change: SubscriptionChange
    ) -> Subscription:
        """Change fields; ``status: active`` re-enables one that is off or in error.

        Raises:
            SubscriptionNotFoundError, SubscriptionInvalidError.
        """
        self._visible(caller, subscription_id)
        if change.owner is not None:
            raise SubscriptionInvalidError("owner cannot change: create a new subscription")
        if change.status is SubscriptionStatus.ERROR:
            raise SubscriptionInvalidError("status: set active or off")
        fields = change.model_dump(exclude_none=True)
        if change.status is SubscriptionStatus.ACTIVE:
            fields["error"] = None
        fields["updated"] = self._clock()

        def apply(sub: Subscription) -> Subscription:
            try:
                changed = Subscription.model_validate({**sub.model_dump(), **fields})
            except ValidationError as exc:
                raise SubscriptionInvalidError("invalid subscription") from exc
            self._check(changed)
            return changed

        updated = self._store.update(subscription_id, apply)
        if updated is None:
            raise SubscriptionNotFoundError(f"no subscription {subscription_id}")
        self._audited(AdminAction.SUBSCRIPTION_UPDATE, caller, subscription_id)
        return updated

    def delete(self, caller: Partner, subscription_id: str) -> None:
        """Delete a subscription and its secrets (pending deliveries are then skipped).

        Raises:
            SubscriptionNotFoundError.
        """
        sub = self._visible(caller, subscription_id)
        self._store.update(subscription_id, lambda _: None)
        self._audited(AdminAction.SUBSCRIPTION_DELETE, caller, subscription_id)
        for generation in {sub.secret_generation, sub.previous_generation}:
            if generation:
                self._secrets.delete(secret_name(sub.id, generation))

    def rotate(
        self, caller: Partner, subscription_id: str, overlap: timedelta
    ) -> tuple[Subscription, str]:
        """A new signing secret; the old one signs too for ``overlap`` (at most 7 days).

        Raises:
            SubscriptionNotFoundError, SubscriptionInvalidError.
        """
        if overlap < timedelta(0) or overlap > MAX_OVERLAP:
            raise SubscriptionInvalidError("overlap: between 0 and 7 days")
        sub = self._visible(caller, subscription_id)
        secret = new_secret()
        generation = sub.secret_generation + 1
        self._secrets.set(secret_name(sub.id, generation), secret)
        now = self._clock()
        retired = sub.previous_generation

        def apply(current: Subscription) -> Subscription:
            return current.model_copy(
                update={
                    "secret_generation": generation,
                    "previous_generation": current.secret_generation if overlap else None,
                    "previous_until": now + overlap if overlap else None,
                    "updated": now,
                }
            )

        rotated = self._store.update(subscription_id, apply)
        if rotated is None:
            raise SubscriptionNotFoundError(f"no subscription {subscription_id}")
        if retired:
            self._secrets.delete(secret_name(sub.id, retired))  # two rotations back
        if not overlap:
            self._secrets.delete(secret_name(sub.id, sub.secret_generation))
        self._audited(AdminAction.SUBSCRIPTION_ROTATE, caller, subscription_id)
        return rotated, secret

    def note_replay(self, caller: Partner, subscription_id: str, queued: int) -> None:
        """Audit a replay of dead letters (the replay itself is ``replay_dead_letters``)."""
        if self._audit is not None:
            self._audit.write(
                admin_audit_event(
                    AdminAction.SUBSCRIPTION_REPLAY,
                    caller.id,
                    f"Subscription/{subscription_id}",
                    self._clock(),
                    {"queued": str(queued)},
                )
            )
