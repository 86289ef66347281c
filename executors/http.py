"""HTTP for the executors: one aiohttp session per worker, and what a response means.

aiohttp rather than httpx: against the same local peer with many calls in flight, httpx's
connection pool slowed down as concurrency grew, and aiohttp did many times its requests a
second (docs/performance.md, "The executors' HTTP client").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from coeflow.clock import Clock
from coeflow.errors import TransientEffectError
from executors.policy import check_http_status, retry_after_seconds

_READ_AT_MOST = 64 * 1024  # a peer's answer is read, not kept: enough to reuse the connection


class HttpClient:
    """No redirects, no proxy settings from the environment, each call bounded in time."""

    def __init__(self, timeout: float, max_connections: int, clock: Clock) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections, self._clock = max_connections, clock
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on first use, inside the worker's event loop
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def deliver(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        server_hostname: str | None = None,
    ) -> str:
        """Make the request; return ``"HTTP <status>"`` on 2xx, else raise what it means."""
        try:
            async with self._open().request(
                method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                server_hostname=server_hostname,
            ) as response:
                await response.content.read(_READ_AT_MOST)
                status, retry_after = response.status, response.headers.get("Retry-After")
        except TimeoutError:  # worded as the runner's own timeout, which is the same limit
            raise TransientEffectError(f"no answer within {self._timeout.total:g}s") from None
        except aiohttp.ClientError as exc:
            raise TransientEffectError(f"cannot reach the peer: {type(exc).__name__}") from None
        check_http_status(status, retry_after_seconds(retry_after, self._clock()))
        return f"HTTP {status}"
