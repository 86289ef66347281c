"""Outbound HTTP to user-supplied URLs, safe from server-side request forgery.

A workflow author chooses Call Webhook and Slack URLs, so without care they could make our
servers reach the cloud metadata service, the broker or anything else on the private network.
Every call here:

- allows only ``http`` and ``https``;
- resolves the host once (``getaddrinfo`` also reads numeric forms such as ``0x7f000001``,
  ``2130706433`` or ``0177.1``) and refuses the call if *any* address is not public:
  loopback, private, link-local (the metadata service), carrier-grade NAT, multicast,
  reserved, unspecified, and IPv6 forms that embed such an IPv4 address (mapped, 6to4,
  Teredo, NAT64);
- connects to the checked address itself (the URL's host goes in ``Host`` and in TLS SNI),
  so a second DNS answer cannot swap in another address (DNS rebinding);
- follows no redirect (a 3xx fails the action, saying so).

``COEFLOW_OUTBOUND_ALLOWLIST`` opens exactly the hosts, addresses and CIDRs it lists: an
allowed address opens that address, an allowed host name opens that name (at whatever it
resolves to), and nothing else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping

from yarl import URL

from coeflow.addresses import Allowlist, IPAddress, blocked_reason
from coeflow.errors import OutboundBlocked, TransientEffectError
from executors.http import HttpClient

__all__ = ["Allowlist", "OutboundClient", "blocked_reason", "resolve"]


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (numeric forms included), via the system resolver."""
    try:
        return [ipaddress.ip_address(host)]  # a plain address: no resolver round trip
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TransientEffectError(f"cannot resolve {host!r}: {exc.strerror}") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class OutboundClient:
    """Calls to user-supplied URLs, with the checks above; one per worker."""

    def __init__(self, allowlist: Allowlist, http: HttpClient) -> None:
        self.allowlist, self._http = allowlist, http

    async def checked_address(self, url: URL) -> IPAddress:
        """The address to connect to for ``url``; raises ``OutboundBlocked`` if refused."""
        if url.scheme not in ("http", "https"):
            raise OutboundBlocked(f"only http and https URLs may be called, not {url.scheme!r}")
        host = url.host
        if not host or url.port is None:
            raise OutboundBlocked("the URL has no host")
        addresses = await resolve(host, url.port)
        if not addresses:
            raise TransientEffectError(f"{host!r} resolves to no address")
        for address in addresses:
            if self.allowlist.allows(host, address):
                continue
            reason = blocked_reason(address)
            if reason is not None:
                raise OutboundBlocked(f"refusing to call {host!r}: {reason}")
        return addresses[0]

    async def deliver(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> str:
        """Call ``url`` at its checked address; what ``HttpClient.deliver`` returns."""
        try:
            target = URL(url)
        except ValueError as exc:
            raise OutboundBlocked(f"not a valid URL: {exc}") from None
        address = await self.checked_address(target)
        pinned = target.with_host(str(address))
        return await self._http.deliver(
            method,
            str(pinned),
            headers={"Host": target.host_port_subcomponent or "", **(headers or {})},
            data=content,
            server_hostname=target.host if target.scheme == "https" else None,
        )
