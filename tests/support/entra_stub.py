"""A Microsoft Entra ID stand-in for tests: RSA signing keys, the tenant's JWKS endpoint
on loopback (``{authority}/{tenant}/discovery/v2.0/keys``), and tokens shaped like
Entra's v2 access tokens, good or deliberately bad."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.serving import serve

TENANT = "11111111-2222-3333-4444-555555555555"
AUDIENCE = "api://fhir-intake"


@dataclass
class Entra:
    authority: str = ""
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)  # key ids the JWKS lists
    fetches: int = 0

    def add_key(self, publish: bool = True) -> str:
        kid = uuid.uuid4().hex[:16]
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)
        return kid

    def jwks(self) -> dict[str, Any]:
        found = []
        for kid in self.published:
            jwk = json.loads(RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            found.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": found}

    def token(self, app_id: str, kid: str | None = None, **overrides: Any) -> str:
        """A v2 access token for ``app_id``; ``overrides`` replace claims (None drops one)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": f"{self.authority}/{TENANT}/v2.0",
            "aud": AUDIENCE,
            "tid": TENANT,
            "azp": app_id,
            "oid": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        kid = kid or self.published[-1]
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@contextmanager
def entra_stub() -> Iterator[Entra]:
    """Serve the JWKS endpoint on loopback for the ``with`` block; one key published."""
    entra = Entra()
    entra.add_key()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != f"/{TENANT}/discovery/v2.0/keys":
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            entra.fetches += 1
            data = json.dumps(entra.jwks()).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return

    with serve(Handler) as url:
        entra.authority = url
        yield entra
