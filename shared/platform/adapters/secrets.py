"""Secret stores: Azure Key Vault (``SecretClient``) and a git-ignored local JSON file."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.keyvault.secrets import SecretClient

from ..secrets import SecretNotFoundError, SecretsUnavailableError

__all__ = ["FileSecretStore", "KeyVaultSecretStore"]

_T = TypeVar("_T")


class KeyVaultSecretStore:
    """Secrets in Key Vault, cached for ``ttl`` seconds (a rotation is a new name).

    When Key Vault refuses our credentials (a rotated client secret, a re-created
    managed identity, a role assignment that changed), the client is built again from
    ``connect`` and the call tried once more, so credentials change without a restart.
    """

    def __init__(
        self,
        connect: Callable[[], SecretClient],
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._client = connect()
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _call(self, operation: Callable[[SecretClient], _T]) -> _T:
        """Run one SDK call; on an authentication refusal reconnect and run it again.

        Raises:
            SecretsUnavailableError: Key Vault did not answer, or refused us twice.
            ResourceNotFoundError: passed through for the caller to translate.
        """
        for attempt in (1, 2):
            try:
                return operation(self._client)
            except ResourceNotFoundError:
                raise
            except ClientAuthenticationError as exc:
                if attempt == 2:
                    raise SecretsUnavailableError("Key Vault refused our credentials") from exc
                self._client = self._connect()
            except HttpResponseError as exc:
                if exc.status_code in (401, 403) and attempt == 1:
                    self._client = self._connect()
                    continue
                raise SecretsUnavailableError(f"Key Vault: {type(exc).__name__}") from exc
            except AzureError as exc:
                raise SecretsUnavailableError(f"Key Vault: {type(exc).__name__}") from exc
        raise SecretsUnavailableError("Key Vault refused our credentials")

    def get(self, name: str) -> str:
        """The secret's value, from the cache while it is fresh.

        Raises:
            SecretNotFoundError: Key Vault has no such secret (or it is deleted).
            SecretsUnavailableError: Key Vault did not answer.
        """
        with self._lock:
            cached = self._cache.get(name)
        if cached and self._clock() - cached[1] < self._ttl:
            return cached[0]
        try:
            value = self._call(lambda client: client.get_secret(name).value)
        except ResourceNotFoundError as exc:
            raise SecretNotFoundError(f"no secret named {name}") from exc
        if value is None:
            raise SecretNotFoundError(f"secret {name} has no value")
        with self._lock:
            self._cache[name] = (value, self._clock())
        return value

    def set(self, name: str, value: str) -> None:
        """Create or replace a secret.

        Raises:
            SecretsUnavailableError: Key Vault did not answer.
        """
        self._call(lambda client: client.set_secret(name, value, content_type="text/plain"))
        with self._lock:
            self._cache[name] = (value, self._clock())

    def delete(self, name: str) -> None:
        """Delete a secret (Key Vault keeps it soft-deleted for its retention).

        Raises:
            SecretsUnavailableError: Key Vault did not answer.
        """
        with self._lock:
            self._cache.pop(name, None)
        try:
            self._call(lambda client: client.begin_delete_secret(name))
        except ResourceNotFoundError:
            return


class FileSecretStore:
    """Secrets in one JSON file (mode 0600), for development hosts without Key Vault.

    Several host processes may share the file, so every change holds an exclusive lock
    and replaces the file atomically.
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self._path.with_suffix(".lock")
        with os.fdopen(os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self._load()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise SecretsUnavailableError(f"local secrets file: {type(exc).__name__}") from exc
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _save(self, secrets: dict[str, str]) -> None:
        partial = self._path.with_suffix(".tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(secrets, out, indent=1, sort_keys=True)
        partial.replace(self._path)

    def get(self, name: str) -> str:
        """The secret's value.

        Raises:
            SecretNotFoundError, SecretsUnavailableError.
        """
        value = self._load().get(name)
        if value is None:
            raise SecretNotFoundError(f"no secret named {name}")
        return value

    def set(self, name: str, value: str) -> None:
        """Create or replace a secret."""
        with self._locked() as secrets:
            secrets[name] = value
            self._save(secrets)

    def delete(self, name: str) -> None:
        """Remove a secret; a missing one is not an error."""
        with self._locked() as secrets:
            if secrets.pop(name, None) is not None:
                self._save(secrets)
