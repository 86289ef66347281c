"""Send SMS through the provider's REST API (Twilio-style form POST with basic auth)."""

from __future__ import annotations

import base64

from coeflow.errors import PermanentEffectError
from coeflow.signing import IDEMPOTENCY_HEADER
from executors.interface import ExecutorContext
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
        headers = {IDEMPOTENCY_HEADER: command.action_id}
        if settings.sms_account and settings.sms_auth_token:
            credentials = f"{settings.sms_account}:{settings.sms_auth_token.get_secret_value()}"
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        return await self.context.http.deliver(
            "POST",
            settings.sms_api_url,
            data={
                "To": command.params["to"],
                "From": settings.sms_from,
                "Body": command.params["body"],
            },
            headers=headers,
        )
