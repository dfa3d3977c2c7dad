"""Upload URLs: a blob SAS (``sr=b``) that creates or writes one ``ingest-drop`` blob until
it expires, and nothing else (no read, list, delete or tags).

In Azure the app holds no account key (shared keys are off), so the SAS is a *user
delegation* SAS, signed with a key the app's identity gets from storage (the Bicep grants
it Storage Blob Delegator), HTTPS only. Azurite hands out user delegation keys only to
OAuth callers over HTTPS, which local runs and tests do not use, so with a connection
string the same SAS is signed with the account key (a service SAS) instead; both grant
exactly the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    UserDelegationKey,
    generate_blob_sas,
)

from shared.platform.errors import ConfigurationError
from shared.platform.storage import storage_errors

__all__ = ["AccountKeyUploadSigner", "UserDelegationUploadSigner"]

_PERMISSIONS = BlobSasPermissions(create=True, write=True)
# A delegation key serves every URL that expires before it does; one is fetched about
# once an hour per instance, not once per upload.
KEY_REUSE = timedelta(hours=1)
# How far storage's clock may be behind ours: the key is valid from a little earlier.
CLOCK_SKEW = timedelta(minutes=5)


class UserDelegationUploadSigner:
    """``UploadSigner`` for identity-based storage (Azure): user delegation SAS, HTTPS only."""

    def __init__(
        self,
        service: BlobServiceClient,
        container: ContainerClient,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._service = service
        self._container = container
        self._clock = clock
        self._lock = threading.Lock()
        self._key: UserDelegationKey | None = None
        self._key_expires = datetime.min.replace(tzinfo=UTC)

    def sign(self, name: str, expires: datetime) -> str:
        """The blob's URL with a user delegation SAS for ``name`` until ``expires``.

        Raises:
            StorageUnavailableError: no delegation key could be had (storage away, or the
                identity lacks the generateUserDelegationKey action).
        """
        token = generate_blob_sas(
            self._container.account_name or "",
            self._container.container_name,
            name,
            user_delegation_key=self._delegation_key(expires),
            permission=_PERMISSIONS,
            expiry=expires,
            protocol="https",
        )
        return f"{self._container.get_blob_client(name).url}?{token}"

    def _delegation_key(self, expires: datetime) -> UserDelegationKey:
        with self._lock:
            if self._key is None or self._key_expires < expires:
                now = self._clock()
                until = expires + KEY_REUSE
                with storage_errors("getting a user delegation key"):
                    self._key = self._service.get_user_delegation_key(now - CLOCK_SKEW, until)
                self._key_expires = until
            return self._key


class AccountKeyUploadSigner:
    """``UploadSigner`` for storage reached with an account key (Azurite, development):
    a service SAS with the same grant; HTTPS only when the endpoint is HTTPS."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    def sign(self, name: str, expires: datetime) -> str:
        """The blob's URL with a service SAS for ``name`` until ``expires``.

        Raises:
            ConfigurationError: the connection string holds no account key (a SAS one).
        """
        credential = self._container.credential
        account = getattr(credential, "account_name", None)
        key = getattr(credential, "account_key", None)
        if not account or not key:
            raise ConfigurationError(
                "batch uploads need identity-based storage or a connection string with an "
                "AccountKey"
            )
        url = self._container.get_blob_client(name).url
        token = generate_blob_sas(
            account,
            self._container.container_name,
            name,
            account_key=key,
            permission=_PERMISSIONS,
            expiry=expires,
            protocol="https" if url.startswith("https:") else None,
        )
        return f"{url}?{token}"
