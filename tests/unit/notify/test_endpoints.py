"""SSRF protection: which endpoints we refuse before sending a byte, and why."""

from __future__ import annotations

import pytest

from shared.notify.endpoints import parse_endpoint, resolve_endpoint, system_resolver
from shared.notify.errors import EndpointRefusedError


def resolving_to(*addresses: str):  # type: ignore[no-untyped-def]
    """A resolver for DNS names, without the network."""
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://172.16.0.9/hook", "private"),
        ("https://192.168.1.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data/", "metadata"),  # IMDS
        ("https://168.63.129.16/machine", "metadata"),  # Azure WireServer: a public address
        ("https://100.100.100.200/", "metadata"),  # Alibaba Cloud
        ("https://[fd00:ec2::254]/", "metadata"),  # AWS IMDS over IPv6
        ("https://169.254.10.10/", "link-local"),
        ("https://[fe80::1]/", "link-local"),
        ("https://[fc00::5]/", "private"),  # unique local
        ("https://0.0.0.0/", "not a unicast"),
        ("https://[::]/", "not a unicast"),
        ("https://100.64.0.1/", "non-public"),  # carrier-grade NAT
        ("https://224.0.0.1/", "not a unicast"),  # multicast
        ("https://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped
        ("https://[::ffff:169.254.169.254]/", "metadata"),
        ("https://[64:ff9b::a9fe:a9fe]/", "metadata"),  # NAT64 of 169.254.169.254
        ("https://[2002:7f00:1::]/", "loopback"),  # 6to4 of 127.0.0.1
    ],
)
def test_internal_addresses_are_refused(url: str, why: str) -> None:
    endpoint = parse_endpoint(url, development=False)
    with pytest.raises(EndpointRefusedError, match=why):
        resolve_endpoint(endpoint, resolving_to("93.184.216.34"))


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f000001",  # ... in hex
        "0177.0.0.1",  # ... octal
        "127.1",  # ... short form
        "0x7f.0.0.1",
    ],
)
def test_numeric_spellings_of_loopback_are_refused(host: str) -> None:
    """The system resolver reads these as IPv4, so the check sees 127.0.0.1."""
    endpoint = parse_endpoint(f"https://{host}/hook", development=False)
    with pytest.raises(EndpointRefusedError, match="loopback"):
        resolve_endpoint(endpoint, system_resolver)


def test_dns_names_are_judged_by_every_address_they_resolve_to() -> None:
    endpoint = parse_endpoint("https://hooks.example.org/in", development=False)
    assert resolve_endpoint(endpoint, resolving_to("93.184.216.34")) == "93.184.216.34"
    with pytest.raises(EndpointRefusedError, match="loopback"):  # e.g. localtest.me
        resolve_endpoint(endpoint, resolving_to("127.0.0.1"))
    with pytest.raises(EndpointRefusedError, match="private"):  # one bad address is enough
        resolve_endpoint(endpoint, resolving_to("93.184.216.34", "10.0.0.7"))
    with pytest.raises(EndpointRefusedError, match="metadata"):
        resolve_endpoint(endpoint, resolving_to("169.254.169.254"))
    with pytest.raises(EndpointRefusedError, match="no address"):
        resolve_endpoint(endpoint, resolving_to())


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example.org/in", "https"),
        ("ftp://hooks.example.org/in", "https"),
        ("https://user:pw@hooks.example.org/in", "credentials"),
        ("https://hooks.example.org@127.0.0.1/in", "credentials"),
        ("https://hooks.example.org/in#x", "fragment"),
        ("https://hooks.example.org/in put", "spaces"),
        ("https://hooks.example.org\\@127.0.0.1/", "backslashes"),
        ("https:///in", "no host"),
        ("https://hooks.example.org:99999/", "not a valid URL"),
    ],
)
def test_url_shapes_are_refused(url: str, why: str) -> None:
    with pytest.raises(EndpointRefusedError, match=why):
        parse_endpoint(url, development=False)


def test_development_allows_plain_http_to_localhost_only() -> None:
    local = parse_endpoint("http://127.0.0.1:8080/hook", development=True)
    assert local.local and resolve_endpoint(local, system_resolver) == "127.0.0.1"
    assert parse_endpoint("http://localhost:9/x", development=True).local
    with pytest.raises(EndpointRefusedError, match="https"):
        parse_endpoint("http://127.0.0.1:8080/hook", development=False)
    with pytest.raises(EndpointRefusedError, match="https"):
        parse_endpoint("http://hooks.example.org/", development=True)
    # A DNS name that resolves to loopback is not the allowance, even in development.
    named = parse_endpoint("https://localtest.me/", development=True)
    with pytest.raises(EndpointRefusedError, match="loopback"):
        resolve_endpoint(named, resolving_to("127.0.0.1"))
    # ...and the allowance covers loopback only, never private networks.
    with pytest.raises(EndpointRefusedError, match="private"):
        resolve_endpoint(parse_endpoint("https://10.0.0.1/", development=True), system_resolver)


# One address inside each row of the IANA special-purpose registries (and the multicast,
# address-space and deprecated site-local blocks), typed here from the registries, not
# from our table; the review's INFO item named the first four, which were let through.
IANA_ROWS = [
    ("fec0::1", "site-local"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.88.99.1", "6to4 relay"),
    ("3fff:0fff::1", "documentation"),
    ("0.1.2.3", "not a unicast"),
    ("10.255.255.254", "private"),
    ("100.127.255.254", "shared address space"),
    ("127.255.255.254", "loopback"),
    ("169.254.255.254", "link"),
    ("172.31.255.254", "private"),
    ("192.0.0.9", "IETF protocol assignments"),  # PCP anycast: "globally reachable", still no
    ("192.0.0.170", "IETF protocol assignments"),  # NAT64/DNS64 discovery
    ("192.0.2.200", "TEST-NET-1"),
    ("192.31.196.1", "AS112"),
    ("192.52.193.1", "AMT"),
    ("192.168.255.254", "private"),
    ("192.175.48.1", "AS112"),
    ("198.19.255.254", "benchmarking"),
    ("198.51.100.200", "TEST-NET-2"),
    ("203.0.113.200", "TEST-NET-3"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("::", "not a unicast"),
    ("::1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ("64:ff9b:1::1", "local use"),
    ("100::1", "discard-only"),
    ("100:0:0:1::1", "dummy"),
    ("2001:0:5db8:d822::a247:27dd", "IETF protocol assignments"),  # TEREDO, public ends
    ("2001:1::2", "IETF protocol assignments"),  # TURN anycast
    ("2001:2::1", "IETF protocol assignments"),  # benchmarking
    ("2001:10::1", "IETF protocol assignments"),  # deprecated ORCHID
    ("2001:20::1", "IETF protocol assignments"),  # ORCHIDv2
    ("2001:db8:ffff::1", "documentation"),
    ("2002:5db8:d822::1", "6to4"),  # 6to4 of a public address: still a tunnel
    ("2620:4f:8000::1", "AS112"),
    ("5f00::1", "segment routing"),
    ("fd12:3456::1", "unique-local"),
    ("febf::1", "link-local"),
    ("ff02::1", "multicast"),
    ("4000::1", "outside 2000::/3"),  # unallocated by IANA
]


@pytest.mark.parametrize(("address", "why"), IANA_ROWS)
def test_every_special_purpose_row_is_refused(address: str, why: str) -> None:
    host = f"[{address}]" if ":" in address else address
    endpoint = parse_endpoint(f"https://{host}/hook", development=False)
    with pytest.raises(EndpointRefusedError, match=why):
        resolve_endpoint(endpoint, resolving_to("93.184.216.34"))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1", "64:ff9b::5db8:d822"])
def test_public_addresses_and_their_nat64_spelling_are_called(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    assert resolve_endpoint(parse_endpoint(f"https://{host}/h", development=False)) == address
