"""What a log line may say of the data it is about.

Logs go to operators, not to the admins whose records they are: they carry no email address,
phone number or other text from a record. The run record keeps every value for those who may
see it (the admin API); a log line says what happened and where to look.
"""

from __future__ import annotations

import re
from typing import Any

_EMAIL = re.compile(r"([\w.+-]{1,2})[\w.+-]*@([\w-]+(?:\.[\w-]+)+)")
_PHONE = re.compile(r"(\+\d{2})[\d\s().-]{4,}(\d{2})")
_QUOTED = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*\"""")


def redacted(text: str) -> str:
    """``text`` with email addresses and phone numbers cut to a few characters: a peer's
    error message may quote the recipient."""
    return _PHONE.sub(r"\1***\2", _EMAIL.sub(r"\1***@\2", text))


def without_values(text: str) -> str:
    """An error message for the log: ``redacted``, and every quoted value (``'ada@x'``,
    which validation messages quote from the input) shown as ``'…'``."""
    return redacted(_QUOTED.sub("'…'", text))


def shown(value: Any) -> str:
    """A record's value for the log: numbers, booleans and null as they are, anything else by
    its kind and size only."""
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        return f"<text of {len(value)} characters>"
    if isinstance(value, list | dict):
        return f"<{type(value).__name__} of {len(value)}>"
    return f"<{type(value).__name__}>"
