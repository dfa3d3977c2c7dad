"""Address blocks a webhook is never sent to: the IANA special-purpose registries in one table.

Python's ``ipaddress`` flags lag the registries (3.11 lets ``fec0::/10``, ``192.0.0.8``,
``192.88.99.0/24`` and ``3fff::/20`` through), so the blocks are listed here, row by row
as IANA lists them, and refused whatever the registry's "globally reachable" column says:
no subscriber's endpoint lives on an anycast relay, a documentation prefix or a
benchmarking network, and refusing costs nothing. Beyond the table, only IPv6 global
unicast (``2000::/3``) is called: IANA's IPv6 address space registry reserves the rest.

Sources: IANA IPv4 Special-Purpose Address Registry and IPv6 Special-Purpose Address
Registry (both as updated 2025), the IPv4 and IPv6 multicast and address space registries,
RFC 3879 (site-local, deprecated).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["SPECIAL_BLOCKS", "SpecialBlock", "outside_global_unicast", "special_block"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# What the refusal says, by kind (the words partners see in a 400).
_LOOPBACK = "a loopback address"
_LINK_LOCAL = "a link-local address"
_PRIVATE = "a private or non-public address"
_NOT_UNICAST = "not a unicast address"
_SPECIAL = "a special-purpose address"


@dataclass(frozen=True, slots=True)
class SpecialBlock:
    """One registry row: its block, its name there, and what we answer."""

    network: Network
    name: str
    why: str


def _rows(*rows: tuple[str, str, str]) -> tuple[SpecialBlock, ...]:
    return tuple(SpecialBlock(ipaddress.ip_network(n), name, why) for n, name, why in rows)


SPECIAL_BLOCKS: tuple[SpecialBlock, ...] = _rows(
    # IPv4 Special-Purpose Address Registry
    ("0.0.0.0/8", "this network (RFC 791)", _NOT_UNICAST),
    ("10.0.0.0/8", "private-use (RFC 1918)", _PRIVATE),
    ("100.64.0.0/10", "shared address space (RFC 6598)", _PRIVATE),
    ("127.0.0.0/8", "loopback (RFC 1122)", _LOOPBACK),
    ("169.254.0.0/16", "link local (RFC 3927)", _LINK_LOCAL),
    ("172.16.0.0/12", "private-use (RFC 1918)", _PRIVATE),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890), 192.0.0.8 dummy included", _SPECIAL),
    ("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)", _SPECIAL),
    ("192.31.196.0/24", "AS112-v4 (RFC 7535)", _SPECIAL),
    ("192.52.193.0/24", "AMT (RFC 7450)", _SPECIAL),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)", _SPECIAL),
    ("192.168.0.0/16", "private-use (RFC 1918)", _PRIVATE),
    ("192.175.48.0/24", "direct delegation AS112 service (RFC 7534)", _SPECIAL),
    ("198.18.0.0/15", "benchmarking (RFC 2544)", _SPECIAL),
    ("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)", _SPECIAL),
    ("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)", _SPECIAL),
    ("240.0.0.0/4", "reserved (RFC 1112)", _NOT_UNICAST),
    ("255.255.255.255/32", "limited broadcast (RFC 919)", _NOT_UNICAST),
    # IPv4 multicast address space registry
    ("224.0.0.0/4", "multicast (RFC 5771)", _NOT_UNICAST),
    # IPv6 Special-Purpose Address Registry
    ("::1/128", "loopback (RFC 4291)", _LOOPBACK),
    ("::/128", "unspecified (RFC 4291)", _NOT_UNICAST),
    ("::ffff:0:0/96", "IPv4-mapped (RFC 4291)", _SPECIAL),
    ("64:ff9b::/96", "IPv4-IPv6 translation (RFC 6052)", _SPECIAL),
    ("64:ff9b:1::/48", "IPv4-IPv6 translation, local use (RFC 8215)", _PRIVATE),
    ("100::/64", "discard-only (RFC 6666)", _SPECIAL),
    ("100:0:0:1::/64", "dummy IPv6 prefix (RFC 9780)", _SPECIAL),
    ("2001::/23", "IETF protocol assignments (RFC 2928), TEREDO and ORCHID included", _SPECIAL),
    ("2001:db8::/32", "documentation (RFC 3849)", _SPECIAL),
    ("2002::/16", "6to4 (RFC 3056)", _SPECIAL),
    ("2620:4f:8000::/48", "direct delegation AS112 service (RFC 7534)", _SPECIAL),
    ("3fff::/20", "documentation (RFC 9637)", _SPECIAL),
    ("5f00::/16", "segment routing SIDs (RFC 9602)", _SPECIAL),
    ("fc00::/7", "unique-local (RFC 4193)", _PRIVATE),
    ("fe80::/10", "link-local unicast (RFC 4291)", _LINK_LOCAL),
    # IPv6 address space and multicast registries, and the deprecated site-local block
    ("fec0::/10", "site-local, deprecated (RFC 3879)", _PRIVATE),
    ("ff00::/8", "multicast (RFC 4291)", _NOT_UNICAST),
)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


def special_block(address: IPAddress) -> SpecialBlock | None:
    """The most specific registry row holding ``address``, or None."""
    found = [b for b in SPECIAL_BLOCKS if address.version == b.network.version]
    holding = [b for b in found if address in b.network]
    return max(holding, key=lambda b: b.network.prefixlen, default=None)


def outside_global_unicast(address: IPAddress) -> bool:
    """IPv6 outside ``2000::/3``, which IANA has not allocated for global unicast."""
    return isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6
