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
