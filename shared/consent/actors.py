"""Who asks, as the consent engine sees them: partners are actors too.

A partner is known by our own identifier (``urn:fhir-intake:partner|<id>``) and by the
identifiers it is registered with (``Partner.identifiers``: NPI, OID), which is how
patients' consents usually name an organization.
"""

from __future__ import annotations

from shared.security.models import Partner

from .models import Actor
from .vocabulary import PARTNER_IDENTIFIER_SYSTEM

__all__ = ["partner_actor"]


def partner_actor(partner_id: str, partner: Partner | None) -> Actor:
    """A partner (sending data, or calling an API) as an actor."""
    known = partner.identifiers if partner else frozenset()
    return Actor(identifiers=frozenset({f"{PARTNER_IDENTIFIER_SYSTEM}|{partner_id}"}) | known)
