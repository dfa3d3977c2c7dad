"""A Key Vault stand-in on loopback HTTPS: the secrets REST calls the SDK makes, behind
the bearer challenge, so ``SecretClient`` runs its real pipeline (challenge policy,
serialization, errors, the delete poller) against it.

Calls: ``PUT /secrets/{name}``, ``GET /secrets/{name}/[{version}]``, ``DELETE
/secrets/{name}``, ``GET /deletedsecrets/{name}``. A request without the bearer token
gets 401 with ``WWW-Authenticate: Bearer authorization=..., resource=...``, as Key Vault
answers the first request of a client.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.serving import serve

TOKEN = "stub-token"


class StaticCredential:
    """A token credential (``get_token``) that records the scopes it was asked for."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@dataclass
class Vault:
    url: str = ""
    ca_file: str = ""
    secrets: dict[str, str] = field(default_factory=dict)
    deleted: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    accepted_token: str = TOKEN


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (PEM files in ``folder``), valid for an hour."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "vault.pem", folder / "vault.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def keyvault_stub(folder: Path) -> Iterator[Vault]:
    """Serve a vault on https://127.0.0.1:<free port> for the ``with`` block."""
    vault = Vault()
    cert_file, key_file = self_signed_certificate(folder)

    class Handler(BaseHTTPRequestHandler):
        def _send(
            self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in {"content-type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _bundle(self, name: str, value: str | None) -> dict[str, Any]:
            found: dict[str, Any] = {
                "id": f"{vault.url}/secrets/{name}/{uuid.uuid4().hex}",
                "attributes": {
                    "enabled": True,
                    "created": int(time.time()),
                    "recoveryLevel": "Recoverable",
                },
            }
            if value is not None:
                found["value"] = value
            return found

        def _route(self) -> tuple[str, str] | None:
            vault.calls.append((self.command, urlsplit(self.path).path))
            length = int(self.headers.get("content-length") or 0)
            self._body = self.rfile.read(length) if length else b""
            if self.headers.get("authorization") != f"Bearer {vault.accepted_token}":
                self._send(
                    401,
                    {
                        "error": {
                            "code": "Unauthorized",
                            "message": "AKV10000: Request is missing a Bearer or PoP token.",
                        }
                    },
                    {
                        "WWW-Authenticate": 'Bearer authorization="https://login.microsoftonline.com/'
                        '00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"'
                    },
                )
                return None
            parts = [p for p in urlsplit(self.path).path.split("/") if p]
            if len(parts) < 2:
                self._send(404, {"error": {"code": "NotFound", "message": "no such route"}})
                return None
            return parts[0], parts[1]

        def _missing(self, name: str) -> None:
            self._send(
                404,
                {
                    "error": {
                        "code": "SecretNotFound",
                        "message": f"A secret with (name/id) {name} was not found.",
                    }
                },
            )

        def do_PUT(self) -> None:
            route = self._route()
            if route and route[0] == "secrets":
                vault.secrets[route[1]] = json.loads(self._body)["value"]
                vault.deleted.pop(route[1], None)
                self._send(200, self._bundle(route[1], vault.secrets[route[1]]))

        def do_GET(self) -> None:
            route = self._route()
            if route is None:
                return
            kind, name = route
            if kind == "secrets" and name in vault.secrets:
                self._send(200, self._bundle(name, vault.secrets[name]))
            elif kind == "deletedsecrets" and name in vault.deleted:
                self._send(
                    200,
                    {
                        **self._bundle(name, None),
                        "recoveryId": f"{vault.url}/deletedsecrets/{name}",
                    },
                )
            else:
                self._missing(name)

        def do_DELETE(self) -> None:
            route = self._route()
            if route is None:
                return
            name = route[1]
            if name not in vault.secrets:
                self._missing(name)
                return
            vault.deleted[name] = vault.secrets.pop(name)
            self._send(
                200,
                {**self._bundle(name, None), "recoveryId": f"{vault.url}/deletedsecrets/{name}"},
            )

        def log_message(self, *args: Any) -> None:
            return

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    with serve(Handler, context) as url:
        vault.url = url
        vault.ca_file = str(cert_file)
        yield vault
