"""Send Slack Message through an incoming-webhook URL (user-supplied: SSRF-checked)."""

from __future__ import annotations

from coeflow.signing import IDEMPOTENCY_HEADER
from executors.interface import ExecutorContext
from topics import codec
from topics.commands import ActionCommand


class SlackExecutor:
    action_type = "send_slack_message"

    def __init__(self, context: ExecutorContext) -> None:
        self.context = context

    async def perform(self, command: ActionCommand) -> str:
        return await self.context.outbound.deliver(
            "POST",
            command.params["webhook_url"],
            headers={"Content-Type": "application/json", IDEMPOTENCY_HEADER: command.action_id},
            content=codec.dumps({"text": command.params["text"]}),
        )
