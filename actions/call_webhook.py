"""Call Webhook: an HTTP request to an external URL (signed by the webhook executor)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from actions.params import ActionParams, ActionType, HttpUrl, JsonWithMergeFields, templated

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _header_value(value: str) -> str:
    """What HTTP allows in a header value: no line breaks or other control characters (a
    CR/LF would start a header of the record's choosing)."""
    if _CONTROL.search(value):
        raise PydanticCustomError(
            "header_value", "a header value is one line without control characters"
        )
    return value


HeaderValue = Annotated[str, StringConstraints(max_length=8_192), templated(_header_value)]


class CallWebhook(ActionParams):
    url: HttpUrl
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, HeaderValue] = Field(default_factory=dict, max_length=50)
    body: JsonWithMergeFields = None

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the executor and cannot be given")
        return headers


ACTION = ActionType("call_webhook", CallWebhook, "Call a webhook")
