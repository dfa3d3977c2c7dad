"""Upload URLs and the upload record against a real Azurite: what a SAS from each signer
lets a plain HTTP client (no SDK, no storage credential) do: write its one blob, in one
request or in blocks; not another name, not read, not list, not after it expired.

The user delegation signer (Azure's) needs an Azurite that takes bearer tokens, which it
does only over HTTPS (``--oauth basic``): this module starts one of its own, with a
self-signed certificate and tokens it accepts unsigned (Azurite checks issuer, audience
and lifetime, then derives the delegation key from the token's oid and tid).
"""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from azure.core.credentials import AccessToken
from azure.storage.blob import BlobServiceClient

from devhost.azurite import start_azurite
from intake_cli.client import UploadFailedError, put_file
from shared import wiring
from shared.intake.adapters import (
    AccountKeyUploadSigner,
    TableUploadLog,
    UserDelegationUploadSigner,
)
from shared.intake.models import Upload
from shared.intake.uploads import name_digest
from shared.platform.names import Container, Table
from shared.platform.provision import provision_storage
from shared.platform.storage import StorageClients
from tests.support.hostproc import REPO, free_port
from tests.support.keyvault_stub import self_signed_certificate

pytestmark = pytest.mark.azurite

NDJSON = b'{"resourceType": "Patient", "gender": "female"}\n'
PLAIN = {"x-ms-blob-type": "BlockBlob", "content-type": "application/x-ndjson"}


def _name(file: str = "a.ndjson") -> str:
    return f"lab/uploads/{uuid.uuid4().hex}/{file}"


@pytest.fixture
def clients(storage_env: dict[str, str]) -> StorageClients:
    storage = wiring.storage()
    provision_storage(storage)
    return storage


def test_account_key_urls_write_their_one_blob_until_they_expire(clients: StorageClients) -> None:
    drop = clients.container(Container.INGEST_DROP)
    signer = AccountKeyUploadSigner(drop)
    now = datetime.now(UTC)
    name = _name()
    url = signer.sign(name, now + timedelta(minutes=5))
    assert httpx.put(url, content=NDJSON, headers=PLAIN).status_code == 201
    assert drop.download_blob(name).readall() == NDJSON
    token = url.partition("?")[2]
    other = drop.get_blob_client(_name())
    assert httpx.put(f"{other.url}?{token}", content=NDJSON, headers=PLAIN).status_code == 403
    assert not other.exists()
    assert httpx.get(url).status_code == 403  # write and create only
    expired = signer.sign(_name(), now - timedelta(seconds=1))
    assert httpx.put(expired, content=NDJSON, headers=PLAIN).status_code == 403


def test_a_large_file_goes_up_in_blocks_with_the_url_alone(clients: StorageClients) -> None:
    drop = clients.container(Container.INGEST_DROP)
    name = _name("big.csv")
    url = AccountKeyUploadSigner(drop).sign(name, datetime.now(UTC) + timedelta(minutes=5))
    data = b"".join(b"row %05d,%s\n" % (i, b"x" * 20) for i in range(200))  # 6 KB
    with httpx.Client() as client:
        put_file(client, url, io.BytesIO(data), len(data), "text/csv", "lab-results", 1024)
    blob = drop.get_blob_client(name)
    assert blob.download_blob().readall() == data
    properties = blob.get_blob_properties()
    assert properties.metadata == {"mapping": "lab-results"}
    assert properties.content_settings.content_type == "text/csv"
    assert len(blob.get_block_list("committed")[0]) == 7  # 6 blocks of 1 KiB and the rest
    late = AccountKeyUploadSigner(drop).sign(_name(), datetime.now(UTC) - timedelta(seconds=1))
    with httpx.Client() as client, pytest.raises(UploadFailedError, match="403"):
        put_file(client, late, io.BytesIO(data), len(data), "text/csv", None, 1024)


def test_the_record_keeps_ids_times_and_a_digest(clients: StorageClients) -> None:
    table = clients.table_client(Table.UPLOADS)
    uploads = TableUploadLog(table)
    now = datetime.now(UTC).replace(microsecond=0)
    name = _name("Smith_John.csv")
    upload_id = name.split("/")[2]
    uploads.record(Upload(upload_id, "lab", name_digest(name), now, now + timedelta(minutes=15)))
    found = uploads.get("lab", upload_id)
    assert found is not None
    assert (found.partner, found.name_sha256, found.expires) == (
        "lab",
        name_digest(name),
        now + timedelta(minutes=15),
    )
    assert uploads.get("clinic", upload_id) is None  # keyed by the partner it was issued to
    row = table.get_entity("lab", upload_id)
    assert "Smith" not in json.dumps({k: str(v) for k, v in row.items()})


class AzuriteToken:
    """Bearer tokens Azurite's ``--oauth basic`` accepts (it does not check signatures)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        now = int(time.time())
        claims = {
            "aud": "https://storage.azure.com",
            "iss": f"https://sts.windows.net/{uuid.UUID(int=1)}/",
            "iat": now,
            "nbf": now - 60,
            "exp": now + 3600,
            "oid": str(uuid.UUID(int=2)),
            "tid": str(uuid.UUID(int=1)),
        }
        parts = [{"alg": "RS256", "typ": "JWT"}, claims]
        encoded = [base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=") for p in parts]
        return AccessToken(b".".join([*encoded, b"c2ln"]).decode(), now + 3600)


@pytest.fixture(scope="module")
def oauth_blob(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The blob endpoint of an Azurite over HTTPS with OAuth, and its certificate."""
    folder = tmp_path_factory.mktemp("azurite-oauth")
    cert, key = self_signed_certificate(folder)
    ports = (free_port(), free_port(), free_port())
    process = start_azurite(
        REPO,
        folder / "data",
        ports=ports,
        in_memory=True,
        log_file=folder / "azurite.log",
        extra_args=["--oauth", "basic", "--cert", str(cert), "--key", str(key)],
    )
    try:
        yield f"https://127.0.0.1:{ports[0]}/devstoreaccount1", cert
    finally:
        process.stop()


def test_user_delegation_urls_are_signed_with_a_key_the_identity_gets(
    oauth_blob: tuple[str, Path],
) -> None:
    """What Azurite can show of Azure's path: the delegation key is fetched with the
    identity's token, and the URL carries the grant (https only, create and write one
    blob) and that key's fields, reused for the next URL. Azurite 3.35 cannot check the
    signature itself: azure-storage-blob 12.31 signs SAS version 2026-10-06, whose string
    to sign has two lines (request headers, request query parameters) more than the
    newest form Azurite knows (2025-07-05), so a PUT is refused there and accepted by
    Azure; the account-key URLs above are checked end to end instead."""
    endpoint, cert = oauth_blob
    service = BlobServiceClient(endpoint, credential=AzuriteToken(), connection_verify=str(cert))
    drop = service.get_container_client("ingest-drop")
    drop.create_container()
    signer = UserDelegationUploadSigner(service, drop)
    now = datetime.now(UTC)
    name = _name()
    url = signer.sign(name, now + timedelta(minutes=15))
    assert url.startswith(f"{endpoint}/ingest-drop/{name}?")
    sas = parse_qs(urlsplit(url).query)
    assert (sas["sp"], sas["sr"], sas["spr"]) == (["cw"], ["b"], ["https"])
    assert (sas["skoid"], sas["sktid"]) == ([str(uuid.UUID(int=2))], [str(uuid.UUID(int=1))])
    key_expiry = datetime.fromisoformat(sas["ske"][0])
    assert datetime.fromisoformat(sas["se"][0]) < key_expiry  # Azure's rule
    # the next URL within the key's life is signed with the same delegation key
    again = parse_qs(urlsplit(signer.sign(_name(), now + timedelta(minutes=30))).query)
    assert (again["skt"], again["ske"], again["skoid"]) == (sas["skt"], sas["ske"], sas["skoid"])
    # one that outlives it gets a new key
    later = parse_qs(urlsplit(signer.sign(_name(), key_expiry + timedelta(minutes=1))).query)
    assert datetime.fromisoformat(later["ske"][0]) > key_expiry
