"""Where we may POST a webhook: scheme and host rules, and the address it resolves to.

Server-side request forgery is the risk: a subscriber who names an internal address
(loopback, private ranges, link-local, the cloud metadata services, or a DNS name that
resolves there) would make us call it. Every address a name resolves to must be public,
and the delivery then connects to the address that was checked (no second lookup that
DNS rebinding could change). Redirects are never followed. In development, and only
for the literal names ``localhost``, ``127.0.0.1`` and ``[::1]``, plain http to loopback
is allowed so a local receiver can be used.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import EndpointRefusedError
from .special_addresses import outside_global_unicast, special_block

__all__ = [
    "Endpoint",
    "Resolver",
    "parse_endpoint",
    "refusal",
    "resolve_endpoint",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

_LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# Metadata and platform services that a public-looking rule would let through.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, Azure IMDS, GCP, OpenStack
        "169.254.170.2",  # AWS ECS task metadata
        "168.63.129.16",  # Azure WireServer (a public address, reachable from every VM)
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A checked endpoint URL, split into what the connection needs."""

    url: str
    scheme: str
    host: str  # lowercase; IPv6 without brackets
    port: int
    local: bool  # the development localhost allowance applies


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (numeric forms like ``2130706433`` included).

    Raises:
        EndpointRefusedError: the name does not resolve.
    """
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise EndpointRefusedError(f"the endpoint's host does not resolve ({exc.args[0]})") from exc
    return [str(info[4][0]) for info in found]


def parse_endpoint(url: str, *, development: bool) -> Endpoint:
    """Check an endpoint URL's shape (no I/O).

    Raises:
        EndpointRefusedError: not https (outside the development allowance), credentials in
            the URL, a fragment, control characters, or no host.
    """
    if any(ord(c) < 0x21 or c in "\\\x7f" for c in url):
        raise EndpointRefusedError("the endpoint has spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EndpointRefusedError("the endpoint is not a valid URL") from exc
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise EndpointRefusedError("the endpoint has no host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise EndpointRefusedError("the endpoint must not carry credentials")
    if parts.fragment:
        raise EndpointRefusedError("the endpoint must not have a fragment")
    local = development and host in _LOCAL_NAMES
    if parts.scheme != "https" and not (local and parts.scheme == "http"):
        raise EndpointRefusedError(
            "the endpoint must use https (plain http only to localhost in development)"
        )
    default = 443 if parts.scheme == "https" else 80
    return Endpoint(url, parts.scheme, host, port or default, local)


def refusal(address: IPAddress, *, loopback_ok: bool = False) -> str | None:
    """Why an address may not be called, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        translated = address.ipv4_mapped
        if address in _NAT64 or (address in _V4_COMPATIBLE and int(address) > 1):
            translated = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if translated is not None:  # another spelling of an IPv4 address: judge that one
            return refusal(translated, loopback_ok=loopback_ok)
        tunnelled = address.teredo[1] if address.teredo else address.sixtofour
        if tunnelled is not None and (why := refusal(tunnelled, loopback_ok=loopback_ok)):
            return why  # the tunnel's end says more than "special-purpose"
    if address in _METADATA:
        return "a cloud metadata address"
    block = special_block(address)
    if block is not None:
        if loopback_ok and address.is_loopback:
            return None
        return f"{block.why}: {block.name}"
    if outside_global_unicast(address):
        return "not a global unicast address (outside 2000::/3)"
    if address.is_loopback:  # the registries cover these; the library's flags stay a net
        return None if loopback_ok else "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "not a unicast address"
    if address.is_private or not address.is_global:
        return "a private or non-public address"
    return None


def resolve_endpoint(endpoint: Endpoint, resolver: Resolver = system_resolver) -> str:
    """The address to connect to; every address the host resolves to must be allowed.

    Raises:
        EndpointRefusedError: the host resolves to an address we will not call.
    """
    try:
        literal: IPAddress | None = ipaddress.ip_address(endpoint.host)
    except ValueError:
        literal = None
    found = [str(literal)] if literal is not None else resolver(endpoint.host, endpoint.port)
    if not found:
        raise EndpointRefusedError("the endpoint's host resolves to no address")
    for text in found:
        try:
            address = ipaddress.ip_address(text.split("%")[0])
        except ValueError as exc:
            raise EndpointRefusedError("the endpoint resolves to an unreadable address") from exc
        why = refusal(address, loopback_ok=endpoint.local)
        if why:
            raise EndpointRefusedError(f"the endpoint resolves to {why}")
    return sorted(found, key=lambda a: ":" in a)[0]  # IPv4 first, as "localhost" listens
