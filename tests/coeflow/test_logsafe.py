"""The worker's log filter: no tokens, and no raw control characters from requests, in any
message or traceback."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import BadHttpMessage

from coeflow import logsafe
from coeflow.logsafe import SafeLogFilter, clean, escape, format_exception, redact

TENANT_TOKEN = "cwt_0123456789abcdef_" + "S" * 43
WEBHOOK_SECRET = "whsec_" + "k" * 39 + "WXYZ"


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose one handler has the filter, as the worker's has, and what it wrote."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(SafeLogFilter())
    logger = logging.getLogger("tests.logsafe")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_control_characters_are_escaped_onto_one_line() -> None:
    assert escape("x\r\nFORGED\x01\x7f\x85\u2028\udcff\t") == (
        "x\\r\\nFORGED\\x01\\x7f\\x85\\u2028\\udcff\\t"
    )
    assert escape("plain — ünïcode ²") == "plain — ünïcode ²"


def test_tokens_and_secrets_are_redacted() -> None:
    text = f"Authorization: Bearer abc\x01def; {TENANT_TOKEN} {WEBHOOK_SECRET}"
    assert redact(text) == "Authorization: Bearer <redacted>; cwt_0123456789abcdef_… whsec_…WXYZ"
    assert clean("bearer abc\x01def") == "bearer <redacted>"


def test_the_operator_token_is_hidden_wherever_it_appears() -> None:
    logsafe.hide("operator-token-for-the-log-test")
    assert redact("got operator-token-for-the-log-test!") == "got <operator token>!"


def test_a_message_with_a_forged_line_stays_one_line(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log
    logger.info("inbound webhook %s refused (%d)", "x\r\nFORGED", 404)
    logger.info("100%% of %s", "them")
    assert stream.getvalue().splitlines() == [
        "INFO inbound webhook x\\r\\nFORGED refused (404)",
        "INFO 100% of them",
    ]


def test_a_cleaned_record_formats_the_same_again() -> None:
    """mode's formatter turns ``args`` into a tuple and formats again: no second ``%``."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s%%", ("a\n",), None)
    assert SafeLogFilter().filter(record)
    record.args = tuple(record.args or ())
    assert record.getMessage() == "a\\n%"


def test_a_traceback_keeps_its_frames_but_escapes_and_redacts_exception_texts(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log
    try:
        try:
            raise ValueError(f"bad header Bearer {TENANT_TOKEN}\r\nFORGED line")
        except ValueError as exc:
            raise RuntimeError("while\nhandling") from exc
    except RuntimeError:
        logger.exception("request failed: %r", "/p\r\nq")
    written = stream.getvalue()
    lines = written.splitlines()
    assert lines[0] == "ERROR request failed: '/p\\r\\nq'"
    assert "Traceback (most recent call last):" in lines
    assert any(line.lstrip().startswith('File "') for line in lines)
    assert "ValueError: bad header Bearer <redacted>\\r\\nFORGED line" in lines
    assert "RuntimeError: while\\nhandling" in lines
    assert not any(line.startswith("FORGED") for line in lines)
    assert "S" * 43 not in written


def test_format_exception_on_its_own() -> None:
    try:
        raise RuntimeError("\x1b[31mred")
    except RuntimeError as exc:
        text = format_exception(exc)
    assert text.endswith("RuntimeError: \\x1b[31mred")


def test_an_unparsable_request_is_one_line_without_its_content(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log
    error = BadHttpMessage("Invalid header value char:\n\n  b'Authorization: Bearer abc\\x01def'")
    logger.error("Error handling request from %s", "127.0.0.1", exc_info=error)
    assert stream.getvalue().splitlines() == [
        "WARNING Error handling request from 127.0.0.1: an HTTP request that could not be "
        "parsed (BadHttpMessage, answered 400); its content is not logged"
    ]


def test_a_record_that_cannot_be_formatted_is_left_to_the_handler() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d", ("not a number",), None)
    assert SafeLogFilter().filter(record) is True
    assert record.args == ("not a number",)


def test_a_traceback_carries_no_value_an_exception_quotes() -> None:
    quoted = repr("ada.lovelace@example.com")  # as a record's value reaches a message
    try:
        raise ValueError(f"{quoted} is not a number; call +49" + "15112345678")
    except ValueError as exc:
        text = logsafe.format_exception(exc)
    assert "ada.lovelace" not in text and "4915112345678" not in text
    assert text.startswith("Traceback (most recent call last):")
    assert text.endswith("ValueError: '…' is not a number; call +49***78")
