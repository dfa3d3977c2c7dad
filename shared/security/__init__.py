"""Security: partner identities and their API keys."""

from __future__ import annotations

from .api_keys import IssuedKey, KeyHash, hash_secret, mint_key, parse_key, verify_secret
from .errors import AuthenticationError, SecurityError, UnknownPartnerError
from .models import Partner, Role, UnmappedTypes
from .partners import (
    PartnerDirectory,
    PartnerLookup,
    TablePartnerDirectory,
    authenticate_api_key,
)

__all__ = [
    "AuthenticationError",
    "IssuedKey",
    "KeyHash",
    "Partner",
    "PartnerDirectory",
    "PartnerLookup",
    "Role",
    "SecurityError",
    "TablePartnerDirectory",
    "UnknownPartnerError",
    "UnmappedTypes",
    "authenticate_api_key",
    "hash_secret",
    "mint_key",
    "parse_key",
    "verify_secret",
]
