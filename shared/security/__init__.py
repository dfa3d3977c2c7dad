"""Security: partner identities and their API keys."""

from __future__ import annotations

from .api_keys import IssuedKey, KeyHash, hash_secret, mint_key, parse_key, verify_secret
from .errors import SecurityError, UnknownPartnerError
from .models import Partner, Role
from .partners import PartnerDirectory, TablePartnerDirectory

__all__ = [
    "IssuedKey",
    "KeyHash",
    "Partner",
    "PartnerDirectory",
    "Role",
    "SecurityError",
    "TablePartnerDirectory",
    "UnknownPartnerError",
    "hash_secret",
    "mint_key",
    "parse_key",
    "verify_secret",
]
