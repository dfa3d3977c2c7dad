"""The subscription service: validation, ownership, secrets shown once, rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.notify.errors import SubscriptionInvalidError, SubscriptionNotFoundError
from shared.notify.models import Content, SubscriptionStatus, Topic, secret_name
from shared.notify.subscriptions import SubscriptionChange, SubscriptionService
from shared.security.models import Partner, Role

from .fakes import Secrets, Subscriptions

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
ACME = Partner(id="acme", name="Acme Care", roles=frozenset({Role.READ}))
OTHER = Partner(id="other", name="Other Care", roles=frozenset({Role.READ}))
ADMIN = Partner(id="ops", name="Operators", roles=frozenset({Role.ADMIN}))
BASE = "https://intake.example.org/api/fhir"


def service(development: bool = False) -> tuple[SubscriptionService, Subscriptions, Secrets]:
    store, secrets = Subscriptions(), Secrets()
    known = {p.id: p for p in (ACME, OTHER, ADMIN)}
    return (
        SubscriptionService(
            store,
            secrets,
            known.get,
            development=development,
            resolver=lambda host, port: ["93.184.216.34"],
            clock=lambda: NOW,
        ),
        store,
        secrets,
    )


def change(**fields: object) -> SubscriptionChange:
    return SubscriptionChange.model_validate(fields)


def test_create_stores_the_secret_in_the_secret_store_only() -> None:
    svc, store, secrets = service()
    sub, secret = svc.create(
        ACME, change(topics=["admission"], endpoint="https://hooks.example.org/in"), BASE
    )
    assert sub.criteria == "Encounter" and sub.topics == {Topic.ADMISSION}
    assert sub.owner == "acme" and sub.content is Content.ID_ONLY
    assert secrets.values == {secret_name(sub.id, 1): secret}
    assert secret not in store.rows[sub.id].model_dump_json()
    assert "secret" not in sub.public() and "secretGeneration" not in sub.public()


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"criteria": "Observation"}, "endpoint is required"),
        ({"endpoint": "https://hooks.example.org/in"}, "criteria is required"),
        (
            {
                "criteria": "Observation",
                "topics": ["admission"],
                "endpoint": "https://h.example.org",
            },
            "topics are about Encounters",
        ),
        (
            {"criteria": "Observation?name=x", "endpoint": "https://h.example.org"},
            "cannot be filtered",
        ),
        ({"criteria": "Observation", "endpoint": "http://h.example.org"}, "https"),
        ({"criteria": "Observation", "endpoint": "https://10.0.0.1/"}, "private"),
        (
            {"criteria": "Observation", "events": [], "endpoint": "https://h.example.org"},
            "give events",
        ),
        (
            {"criteria": "Observation", "owner": "other", "endpoint": "https://h.example.org"},
            "only the admin role",
        ),
    ],
)
def test_create_refuses_with_the_reason(fields: dict[str, object], complaint: str) -> None:
    svc, _, _ = service()
    with pytest.raises(SubscriptionInvalidError, match=complaint):
        svc.create(ACME, change(**fields), BASE)


def test_unknown_fields_and_bad_json_are_refused() -> None:
    with pytest.raises(SubscriptionInvalidError, match="colour"):
        SubscriptionChange.read(b'{"colour": "red"}')
    with pytest.raises(SubscriptionInvalidError, match="invalid subscription"):
        SubscriptionChange.read(b"{not json")
    with pytest.raises(SubscriptionInvalidError, match="content"):
        SubscriptionChange.read(b'{"content": "everything"}')


def test_development_allows_localhost_receivers() -> None:
    svc, _, _ = service(development=True)
    sub, _ = svc.create(
        ACME, change(criteria="Observation", endpoint="http://127.0.0.1:9/in"), BASE
    )
    assert sub.endpoint == "http://127.0.0.1:9/in"


def test_partners_see_only_their_own_admins_see_all() -> None:
    svc, _, _ = service()
    mine, _ = svc.create(
        ACME, change(criteria="Observation", endpoint="https://h.example.org"), BASE
    )
    theirs, _ = svc.create(
        ADMIN,
        change(criteria="Observation", endpoint="https://h.example.org", owner="other"),
        BASE,
    )
    assert [s.id for s in svc.list(ACME)] == [mine.id]
    assert {s.id for s in svc.list(ADMIN)} == {mine.id, theirs.id}
    with pytest.raises(SubscriptionNotFoundError):
        svc.get(ACME, theirs.id)
    with pytest.raises(SubscriptionNotFoundError):
        svc.delete(ACME, theirs.id)
    assert svc.get(ADMIN, mine.id).owner == "acme"
    assert svc.describe(ADMIN, mine.id)["eventCount"] == 0


def test_patch_reenables_and_clears_the_error() -> None:
    svc, store, _ = service()
    sub, _ = svc.create(
        ACME, change(criteria="Observation", endpoint="https://h.example.org"), BASE
    )
    store.update(
        sub.id,
        lambda s: s.model_copy(update={"status": SubscriptionStatus.OFF, "error": "410 Gone"}),
    )
    again = svc.update(ACME, sub.id, change(status="active"))
    assert again.status is SubscriptionStatus.ACTIVE and again.error is None
    with pytest.raises(SubscriptionInvalidError, match="owner cannot change"):
        svc.update(ADMIN, sub.id, change(owner="other"))
    with pytest.raises(SubscriptionInvalidError, match="https"):
        svc.update(ACME, sub.id, change(endpoint="http://h.example.org"))


def test_rotation_keeps_the_old_secret_for_the_overlap_and_delete_removes_all() -> None:
    svc, _, secrets = service()
    sub, first = svc.create(
        ACME, change(criteria="Observation", endpoint="https://h.example.org"), BASE
    )
    rotated, second = svc.rotate(ACME, sub.id, timedelta(hours=24))
    assert second != first
    assert rotated.secret_names(NOW) == [secret_name(sub.id, 2), secret_name(sub.id, 1)]
    assert rotated.secret_names(NOW + timedelta(hours=25)) == [secret_name(sub.id, 2)]
    _, third = svc.rotate(ACME, sub.id, timedelta(0))  # no overlap: old one goes now
    assert set(secrets.values) == {secret_name(sub.id, 3)}
    assert secrets.values[secret_name(sub.id, 3)] == third
    with pytest.raises(SubscriptionInvalidError, match="overlap"):
        svc.rotate(ACME, sub.id, timedelta(days=8))
    svc.delete(ACME, sub.id)
    assert secrets.values == {}
