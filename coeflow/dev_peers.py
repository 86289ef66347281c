"""What ``coeflow dev`` runs in place of real email, SMS and Slack providers.

Without ``COEFLOW_SMTP_HOST`` and ``COEFLOW_SMS_API_URL``, the executors in ``coeflow dev``
deliver to a local SMTP outbox and a local HTTP sink, which log what they receive (addresses
and numbers cut short), the way MailHog or Mailpit do for email. The demo's Slack workflow
posts to the sink too. Nothing leaves the machine.
"""

from __future__ import annotations

import logging
from email import message_from_bytes, policy
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP
from mode import Service

from coeflow.redact import redacted

log = logging.getLogger("coeflow.dev")

OUTBOX_PORT = 2525
SINK_PORT = 6067


def sink_url(path: str) -> str:
    return f"http://127.0.0.1:{SINK_PORT}{path}"


class _Outbox:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        recipients = ", ".join(redacted(r) for r in envelope.rcpt_tos)
        log.info("outbox: email to %s: %s", recipients, message["Subject"])
        return "250 accepted by the coeflow dev outbox"


class DevPeers(Service):
    """A local SMTP outbox on ``OUTBOX_PORT`` and an HTTP sink on ``SINK_PORT``."""

    async def on_start(self) -> None:
        self._smtp = await self.loop.create_server(
            lambda: SMTP(_Outbox(), hostname="coeflow-dev"), "127.0.0.1", OUTBOX_PORT
        )
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", SINK_PORT).start()

    async def on_stop(self) -> None:
        self._smtp.close()
        await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        log.info("sink: %s %s (%d bytes)", request.method, request.path, len(body))
        return web.json_response({"ok": True})
