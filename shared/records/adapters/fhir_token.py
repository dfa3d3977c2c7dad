"""Bearer tokens for an existing FHIR server, from the app's managed identity."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from azure.identity import DefaultAzureCredential

__all__ = ["managed_identity_token"]


def managed_identity_token(server_url: str) -> Callable[[], str]:
    """A token getter for the server's audience (its origin, as Azure Health Data Services
    expects); ``azure-identity`` caches tokens and renews them before they expire."""
    parts = urlsplit(server_url)
    scope = f"{parts.scheme}://{parts.netloc}/.default"
    credential = DefaultAzureCredential()
    return lambda: credential.get_token(scope).token
