"""What the HTTP executors share: turning a response or a transport error into an outcome."""

from __future__ import annotations

from collections.abc import Awaitable

import httpx

from coeflow.clock import Clock
from coeflow.errors import TransientEffectError
from executors.policy import check_http_status, retry_after_seconds


async def delivered(request: Awaitable[httpx.Response], clock: Clock) -> str:
    """Await ``request``; return ``"HTTP <status>"`` or raise the failure it means."""
    try:
        response = await request
    except httpx.TimeoutException:
        raise TransientEffectError("the peer did not answer in time") from None
    except httpx.TransportError as exc:
        raise TransientEffectError(f"cannot reach the peer: {type(exc).__name__}") from None
    check_http_status(
        response.status_code, retry_after_seconds(response.headers.get("retry-after"), clock())
    )
    return f"HTTP {response.status_code}"
