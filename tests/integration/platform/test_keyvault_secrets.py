"""``KeyVaultSecretStore`` with the real ``SecretClient`` against a Key Vault stand-in on
loopback HTTPS (tests/support/keyvault_stub.py): challenge, set, get, cache, delete."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.keyvault.secrets import SecretClient

from shared.platform.adapters import KeyVaultSecretStore
from shared.platform.secrets import SecretNotFoundError, SecretsUnavailableError
from tests.support.keyvault_stub import StaticCredential, Vault, keyvault_stub


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(vault: Vault, credential: StaticCredential) -> SecretClient:
    return SecretClient(
        vault.url,
        credential,  # type: ignore[arg-type]
        verify_challenge_resource=False,  # the stand-in is 127.0.0.1, not *.vault.azure.net
        connection_verify=vault.ca_file,
        retry_total=0,
    )


@pytest.fixture
def vault(tmp_path: Path):  # type: ignore[no-untyped-def]
    with keyvault_stub(tmp_path) as running:
        yield running


def test_set_get_delete_through_the_sdk(vault: Vault) -> None:
    credential = StaticCredential()
    store = KeyVaultSecretStore(lambda: client(vault, credential), ttl=0)
    store.set("webhook-abc-1", "whsec_value")
    assert vault.secrets == {"webhook-abc-1": "whsec_value"}
    assert store.get("webhook-abc-1") == "whsec_value"
    # The SDK answered the bearer challenge with a token for the vault's scope.
    assert credential.scopes and credential.scopes[0] == ("https://vault.azure.net/.default",)
    assert ("PUT", "/secrets/webhook-abc-1") in vault.calls
    store.delete("webhook-abc-1")
    assert vault.secrets == {} and "webhook-abc-1" in vault.deleted
    with pytest.raises(SecretNotFoundError):
        store.get("webhook-abc-1")
    store.delete("webhook-abc-1")  # already gone: fine


def test_reads_are_cached_for_the_ttl(vault: Vault) -> None:
    clock = Clock()
    vault.secrets["webhook-abc-1"] = "whsec_one"
    store = KeyVaultSecretStore(lambda: client(vault, StaticCredential()), ttl=300, clock=clock)
    assert store.get("webhook-abc-1") == "whsec_one"
    reads = sum(1 for method, _ in vault.calls if method == "GET")
    vault.secrets["webhook-abc-1"] = "whsec_two"  # rotated outside this instance
    assert store.get("webhook-abc-1") == "whsec_one"
    assert sum(1 for method, _ in vault.calls if method == "GET") == reads
    clock.now += 301
    assert store.get("webhook-abc-1") == "whsec_two"


def test_a_vault_that_refuses_is_unavailable_not_a_crash(vault: Vault) -> None:
    vault.accepted_token = "another-token"  # our token is never accepted
    store = KeyVaultSecretStore(lambda: client(vault, StaticCredential()))
    with pytest.raises(SecretsUnavailableError, match="Key Vault"):
        store.get("webhook-abc-1")
    with pytest.raises(SecretsUnavailableError):
        store.set("webhook-abc-1", "whsec_x")


def test_refused_credentials_are_renewed_without_a_restart(vault: Vault) -> None:
    """The identity's token changes (say, a rotated client secret): the store reconnects
    with fresh credentials once, and the call succeeds."""
    tokens = iter(["stub-token", "rotated-token", "rotated-token"])
    connects = []

    def connect() -> SecretClient:
        connects.append(1)
        return client(vault, StaticCredential(next(tokens)))

    vault.secrets["webhook-abc-1"] = "whsec_one"
    store = KeyVaultSecretStore(connect, ttl=0)
    assert store.get("webhook-abc-1") == "whsec_one"
    vault.accepted_token = "rotated-token"  # the old token is no longer accepted
    assert store.get("webhook-abc-1") == "whsec_one"
    assert len(connects) == 2
