"""Which addresses outbound calls may reach (pure: no resolver, no socket).

``executors/outbound.py`` applies this to every address a host resolves to when it calls; the
admin API applies it when a workflow is saved to a URL whose host is already an address (or
``localhost``), so a workflow that could only ever be refused is refused at once.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached, or ``None`` for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = blocked_reason(embedded)
            return f"it embeds {embedded}, and {reason}" if reason else None
    for test, reason in (
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local (cloud metadata lives there)"),
        (address.is_multicast, "multicast"),
        (address.is_unspecified, "unspecified"),
        (address in _CARRIER_GRADE_NAT, "carrier-grade NAT"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not a public address"),
    ):
        if test:
            return f"{address} is {reason}"
    return None


@dataclass(frozen=True)
class Allowlist:
    hosts: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        hosts, networks = set(), []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        return host.lower().rstrip(".") in self.hosts or any(
            address in network for network in self.networks
        )


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` names without a resolver: an IP address in any form the system
    resolver reads (``0x7f000001``, ``2130706433``, ``0177.1``), or a loopback name."""
    name = host.strip("[]").lower().rstrip(".")
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return ipaddress.IPv4Address("127.0.0.1")
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        pass
    try:  # the legacy IPv4 forms: what getaddrinfo would make of them
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def refused_url(url: str, allowlist: Allowlist) -> str | None:
    """Why a call to ``url`` would always be refused, judged from the URL alone, or ``None``
    (a host name is judged when it is called: its addresses may change)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None  # the URL's own validation says what is wrong with it
    address = literal_address(host) if host else None
    if host is None or address is None or allowlist.allows(host, address):
        return None
    reason = blocked_reason(address)
    return None if reason is None else f"outbound calls may not reach it: {reason}"
