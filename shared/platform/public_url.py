"""The origin our links are written with: a configured one, never a caller's Host header.

Links in CapabilityStatement, OpenAPI ``servers``, search bundles, export status and
manifests, and subscriptions' base URLs were built from the request URL, that is from
the Host header a caller sends: a forged Host planted links to anywhere (behind a shared
cache, for everyone). The deployment names its public origins instead
(``INTAKE_PUBLIC_BASE_URL``, comma-separated, plus ``https://$WEBSITE_HOSTNAME``, which
App Service sets); a request to one of them keeps it, any other gets the first. Only a
development host, with none configured, answers with the request's own origin.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError
from .names import Setting

__all__ = ["origin_of", "public_url"]


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lowercased."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def public_url(request_url: str, origins: tuple[str, ...], *, development: bool) -> str:
    """``request_url`` with its origin replaced by the public one it should have.

    Raises:
        ConfigurationError: outside development, no public origin is configured.
    """
    asked = origin_of(request_url)
    if asked in origins or (not origins and development):
        origin = asked
    elif origins:
        origin = origins[0]
    else:
        raise ConfigurationError(
            f"no public base URL: set {Setting.PUBLIC_BASE_URL} "
            f"(App Service sets {Setting.WEBSITE_HOSTNAME}, which serves too)"
        )
    parts = urlsplit(request_url)
    scheme, _, netloc = origin.partition("://")
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))
