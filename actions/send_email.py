"""Send Email: an email to one recipient, sent by the email executor over SMTP."""

from __future__ import annotations

from pydantic import Field

from actions.params import ActionParams, ActionType, Email, Line, Text


class SendEmail(ActionParams):
    to: Email
    subject: Line
    body: Text
    cc: list[Email] = Field(default_factory=list)
    reply_to: Email | None = None


ACTION = ActionType("send_email", SendEmail, "Send an email")
