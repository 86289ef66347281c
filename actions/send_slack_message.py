"""Send Slack Message: a message through a Slack incoming-webhook URL."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from actions.params import ActionParams, ActionType, HttpUrl, Text


class SendSlackMessage(ActionParams):
    webhook_url: HttpUrl
    text: Annotated[Text, StringConstraints(min_length=1, max_length=40_000)]


ACTION = ActionType("send_slack_message", SendSlackMessage, "Send a Slack message")
