"""Call Webhook: the request the workflow describes, signed, with the action id as the
idempotency key (user-supplied URL: SSRF-checked)."""

from __future__ import annotations

from coeflow.errors import PermanentEffectError
from coeflow.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signature_header
from executors.interface import ExecutorContext
from topics import codec
from topics.commands import ActionCommand

ACTION_ID_HEADER = "Coeflow-Action-Id"


class WebhookExecutor:
    action_type = "call_webhook"

    def __init__(self, context: ExecutorContext) -> None:
        self.context = context

    async def perform(self, command: ActionCommand) -> str:
        secret = self.context.settings.webhook_signing_secret
        if secret is None:
            raise PermanentEffectError(
                "webhook deliveries are signed, and no secret is configured "
                "(COEFLOW_WEBHOOK_SIGNING_SECRET)"
            )
        params = command.params
        method = params.get("method", "POST")
        body = b"" if params.get("body") is None else codec.dumps(params["body"])
        timestamp = int(self.context.clock().timestamp())
        headers = {
            **params.get("headers", {}),
            IDEMPOTENCY_HEADER: command.action_id,
            ACTION_ID_HEADER: command.action_id,
            SIGNATURE_HEADER: signature_header(secret.get_secret_value(), timestamp, body),
        }
        if body:
            headers["Content-Type"] = "application/json"
        return await self.context.outbound.deliver(
            method, params["url"], headers=headers, content=body or None
        )
