"""Send SMS through the provider's REST API (Twilio-style form POST with basic auth)."""

from __future__ import annotations

import httpx

from coeflow.errors import PermanentEffectError
from executors.base import ExecutorContext
from executors.http import delivered
from executors.signing import IDEMPOTENCY_HEADER
from topics.commands import ActionCommand


class SmsExecutor:
    action_type = "send_sms"

    def __init__(self, context: ExecutorContext) -> None:
        self.context = context

    async def perform(self, command: ActionCommand) -> str:
        settings = self.context.settings
        if not (settings.sms_api_url and settings.sms_from):
            raise PermanentEffectError(
                "no SMS provider is configured (COEFLOW_SMS_API_URL, COEFLOW_SMS_FROM)"
            )
        auth = httpx.Auth()  # sends the request as it is
        if settings.sms_account and settings.sms_auth_token:
            auth = httpx.BasicAuth(settings.sms_account, settings.sms_auth_token.get_secret_value())
        request = self.context.provider_http.post(
            settings.sms_api_url,
            data={
                "To": command.params["to"],
                "From": settings.sms_from,
                "Body": command.params["body"],
            },
            headers={IDEMPOTENCY_HEADER: command.action_id},
            auth=auth,
        )
        return await delivered(request, self.context.clock)
