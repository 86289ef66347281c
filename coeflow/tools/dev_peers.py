"""What ``coeflow dev`` runs in place of real email, SMS and Slack providers.

Without ``COEFLOW_SMTP_HOST`` and ``COEFLOW_SMS_API_URL``, the executors in ``coeflow dev``
deliver to a local SMTP outbox (127.0.0.1, ``COEFLOW_DEV_SMTP_PORT``, 2525) and a local HTTP
sink (``COEFLOW_DEV_SINK_PORT``, 6067), which log what they receive (addresses and numbers cut
short), the way MailHog or Mailpit do for email. The demo's Slack workflow posts to the sink
too (at 6067: its URL is part of the example workflow). Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from email import message_from_bytes, policy
from typing import Any, TypeVar

from aiohttp import web
from aiosmtpd.smtp import SMTP
from mode import Service

from coeflow.errors import CoeflowError
from coeflow.redact import redacted

log = logging.getLogger("coeflow.dev")

OUTBOX_PORT = 2525
"""The outbox's port by default (``COEFLOW_DEV_SMTP_PORT``)."""
SINK_PORT = 6067
"""The sink's port by default (``COEFLOW_DEV_SINK_PORT``), where the demo's Slack posts go."""

_T = TypeVar("_T")


def sink_url(path: str, port: int = SINK_PORT) -> str:
    return f"http://127.0.0.1:{port}{path}"


@dataclass(frozen=True, slots=True)
class DevPort:
    """A port ``coeflow dev`` listens on, and the setting that moves it."""

    what: str
    host: str
    port: int
    setting: str
    hint: str = ""

    def taken(self) -> str:
        """The one line that says this port is taken and how to move it."""
        return (
            f"✗ {self.host}:{self.port} ({self.what}) is already in use: stop what holds it or "
            f"set {self.setting} to another port{self.hint}"
        )


class PortTaken(CoeflowError):
    def __init__(self, port: DevPort) -> None:
        super().__init__(port.taken())
        self.port = port


async def _listen(port: DevPort, binding: Awaitable[_T]) -> _T:
    try:
        return await binding
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortTaken(port) from None
        raise


class _Outbox:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        recipients = ", ".join(redacted(r) for r in envelope.rcpt_tos)
        subject = str(message["Subject"] or "")  # rendered from a record: its size only
        log.info("outbox: email to %s, subject of %d characters", recipients, len(subject))
        return "250 accepted by the coeflow dev outbox"


class DevPeers(Service):
    """A local SMTP outbox and an HTTP sink on 127.0.0.1, each only if given its port; a port
    that is taken raises ``PortTaken`` (with nothing left listening)."""

    def __init__(self, *, outbox: DevPort | None, sink: DevPort | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outbox, self.sink = outbox, sink
        self._smtp: asyncio.AbstractServer | None = None
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        try:
            if self.outbox is not None:
                self._smtp = await _listen(
                    self.outbox,
                    self.loop.create_server(
                        lambda: SMTP(_Outbox(), hostname="coeflow-dev"),
                        self.outbox.host,
                        self.outbox.port,
                    ),
                )
            if self.sink is not None:
                app = web.Application()
                app.router.add_route("*", "/{path:.*}", self._receive)
                self._runner = web.AppRunner(app, access_log=None)
                await self._runner.setup()
                site = web.TCPSite(self._runner, self.sink.host, self.sink.port)
                await _listen(self.sink, site.start())
        except BaseException:
            await self.on_stop()
            raise

    async def on_stop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        log.info("sink: %s %s (%d bytes)", request.method, request.path, len(body))
        return web.json_response({"ok": True})
