"""Send SMS: a text message through the SMS provider."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from actions.params import ActionParams, ActionType, Phone, Text


class SendSms(ActionParams):
    to: Phone
    body: Annotated[Text, StringConstraints(min_length=1, max_length=1_600)]


ACTION = ActionType("send_sms", SendSms, "Send an SMS")
