"""Log lines that carry no tokens and no raw control characters from requests.

Whatever a request carries can reach a log message: a workflow id in a path (where a
percent-encoded CR LF is decoded), a header in an exception's text. ``SafeLogFilter``, on the
worker's log handler (``processor/app.py``), rewrites each record before it is formatted:

- control characters (C0, DEL, C1, the Unicode line and paragraph separators, and the lone
  surrogates that bytes which are not UTF-8 decode to) are written as escapes (``\\r``,
  ``\\x01``), so a message is one line and cannot forge another;
- bearer tokens become ``Bearer <redacted>``; a tenant token (``cwt_<id>_<secret>``) keeps
  its id, its fingerprint, only; an inbound webhook secret (``whsec_…``) only its last four
  characters; the operator's token (``hide``) is replaced wherever it appears;
- a traceback keeps its frames (our code) but has its exception texts escaped and redacted
  the same way; an HTTP request aiohttp could not parse is one line without its content
  (aiohttp's message quotes the offending header line, token and all).
"""

from __future__ import annotations

import logging
import re
import traceback

from coeflow.redact import without_values

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s,;\"']+")
_TENANT_TOKEN = re.compile(r"\bcwt_([0-9A-Za-z]+)_[A-Za-z0-9_-]+")
_WEBHOOK_SECRET = re.compile(r"\bwhsec_[A-Za-z0-9_-]*([A-Za-z0-9_-]{4})\b")
_TRUSTED_CHUNKS = (
    'File "',
    "[Previous line repeated",
)
_SEPARATORS = frozenset(
    {
        "Traceback (most recent call last):\n",
        "\nThe above exception was the direct cause of the following exception:\n\n",
        "\nDuring handling of the above exception, another exception occurred:\n\n",
    }
)

_hidden: set[str] = set()


def hide(secret: str) -> None:
    """Replace ``secret`` (the operator's token) in every log line from now on."""
    if len(secret) >= 8:
        _hidden.add(secret)


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def escape(text: str) -> str:
    """``text`` on one line: every control character as its escape."""
    return _CONTROL.sub(_escape_char, text)


def redact(text: str) -> str:
    """``text`` without bearer tokens, tenant token secrets, webhook secrets, or the
    operator's token."""
    for secret in _hidden:
        text = text.replace(secret, "<operator token>")
    text = _BEARER.sub(r"\1 <redacted>", text)
    text = _TENANT_TOKEN.sub(r"cwt_\1_…", text)
    return _WEBHOOK_SECRET.sub(r"whsec_…\1", text)


def clean(text: str) -> str:
    """``text`` redacted and escaped. Most lines need neither, which is told cheaply (a log
    line per run: the regular expressions alone cost more than formatting it)."""
    if (
        text.isprintable()  # no control character, separator or surrogate
        and "cwt_" not in text
        and "whsec_" not in text
        and "bearer" not in text.lower()
        and not any(secret in text for secret in _hidden)
    ):
        return text
    return escape(redact(text))


def format_exception(exc: BaseException) -> str:
    """A traceback like ``traceback.format_exception``'s, each exception's text (which may
    quote a request or a record) escaped onto its line, redacted, and without quoted values,
    email addresses or phone numbers (``coeflow.redact.without_values``)."""
    chunks = []
    for chunk in traceback.TracebackException.from_exception(exc).format():
        if chunk in _SEPARATORS or chunk.lstrip().startswith(_TRUSTED_CHUNKS):
            chunks.append(chunk)
        else:
            # An exception's text may quote a record it was raised on: no values in the log.
            chunks.append(clean(without_values(chunk.removesuffix("\n"))) + "\n")
    return "".join(chunks).removesuffix("\n")


def _unparsable_request(exc: BaseException) -> bool:
    try:
        from aiohttp.http_exceptions import HttpProcessingError
    except ImportError:  # pragma: no cover (the worker always has aiohttp)
        return False
    return isinstance(exc, HttpProcessingError)


class SafeLogFilter(logging.Filter):
    """Rewrites each record as the module says; drops none."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # the handler reports a record it cannot format
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and _unparsable_request(exc):
            status = getattr(exc, "code", 400)
            message += f": an HTTP request that could not be parsed ({type(exc).__name__}, "
            message += f"answered {status}); its content is not logged"
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        elif exc is not None:
            record.exc_text = format_exception(exc)
        elif record.exc_text:
            record.exc_text = clean(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        # () and not None: mode's formatter makes None an argument, and applies it again.
        record.msg, record.args = clean(message), ()
        return True
