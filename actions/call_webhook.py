"""Call Webhook: an HTTP request to an external URL (signed by the webhook executor)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from actions.base import ActionParams, ActionType, HttpUrl, JsonWithMergeFields, Text

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class CallWebhook(ActionParams):
    url: HttpUrl
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, Text] = Field(default_factory=dict)
    body: JsonWithMergeFields = None

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the executor and cannot be given")
        return headers


ACTION = ActionType("call_webhook", CallWebhook, "Call a webhook")
