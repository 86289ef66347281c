"""SSRF protection: addresses refused by kind and by encoding, with a canary that counts."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from coeflow.clock import utc_now
from coeflow.errors import OutboundBlocked, PermanentEffectError
from executors.http import HttpClient
from executors.outbound import Allowlist, OutboundClient, blocked_reason
from tests.peers import Canary, HttpPeer


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00:ec2::254", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::ffff:169.254.169.254", "embeds 169.254.169.254"),
        ("2002:a9fe:a9fe::", "embeds 169.254.169.254"),
        ("64:ff9b::a00:1", "embeds 10.0.0.1"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "embeds 10.0.0.1"),
    ],
)
def test_non_public_addresses_are_refused_with_the_reason(address: str, kind: str) -> None:
    reason = blocked_reason(ipaddress.ip_address(address))
    assert reason is not None and kind in reason


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_the_allowlist_opens_exactly_what_it_lists() -> None:
    allow = Allowlist.parse(["127.0.0.1", "10.1.0.0/16", "Hooks.Internal."])
    assert allow.allows("x", ipaddress.ip_address("127.0.0.1"))
    assert not allow.allows("x", ipaddress.ip_address("127.0.0.2"))
    assert allow.allows("x", ipaddress.ip_address("10.1.200.3"))
    assert not allow.allows("x", ipaddress.ip_address("10.2.0.1"))
    assert allow.allows("hooks.internal", ipaddress.ip_address("10.9.9.9"))


@pytest.fixture
def canary() -> Iterator[Canary]:
    with Canary("127.0.0.2") as listening:
        yield listening


def encodings_of_127_0_0_2(port: int) -> list[str]:
    return [
        f"http://127.0.0.2:{port}/",
        f"http://0x7f000002:{port}/",
        f"http://2130706434:{port}/",
        f"http://0177.0.0.2:{port}/",
        f"http://127.2:{port}/",
        f"http://[::ffff:127.0.0.2]:{port}/",
        f"http://[::ffff:7f00:2]:{port}/",
    ]


async def test_every_encoding_of_a_blocked_address_is_refused_before_connecting(
    canary: Canary,
) -> None:
    # 127.0.0.1 is allowed, as in the tests' workers: that must not open 127.0.0.2.
    http = HttpClient(timeout=2, max_connections=10, clock=utc_now)
    client = OutboundClient(Allowlist.parse(["127.0.0.1"]), http)
    urls = [
        *encodings_of_127_0_0_2(canary.port),
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
    ]
    try:
        for url in urls:
            with pytest.raises(OutboundBlocked, match="refusing to call"):
                await client.deliver("POST", url, content=b"{}")
        for url in ["ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1/"]:
            with pytest.raises(OutboundBlocked, match="only http and https"):
                await client.deliver("GET", url)
    finally:
        await http.aclose()
    assert canary.connections == 0


async def test_an_allowed_address_is_reached_and_a_redirect_is_not_followed(
    canary: Canary,
) -> None:
    http = HttpClient(timeout=2, max_connections=10, clock=utc_now)
    client = OutboundClient(Allowlist.parse(["127.0.0.1"]), http)
    try:
        with HttpPeer() as peer:
            assert await client.deliver("POST", peer.url("/ok/1"), content=b"{}") == "HTTP 200"
            redirect = peer.url(f"/redirect?to=http://127.0.0.2:{canary.port}/")
            with pytest.raises(PermanentEffectError, match="redirects are not followed"):
                await client.deliver("POST", redirect, content=b"{}")
            first, redirected = peer.received
            assert first.headers["host"] == f"127.0.0.1:{peer.port}"
            assert redirected.status == 302
    finally:
        await http.aclose()
    assert canary.connections == 0


async def test_the_host_header_names_the_url_host_while_the_checked_address_is_dialled() -> None:
    http = HttpClient(timeout=2, max_connections=10, clock=utc_now)
    client = OutboundClient(Allowlist.parse(["localhost"]), http)
    try:
        with HttpPeer() as peer:
            url = f"http://localhost:{peer.port}/ok/host"
            assert await client.deliver("GET", url) == "HTTP 200"
            assert peer.received[0].headers["host"] == f"localhost:{peer.port}"
    finally:
        await http.aclose()
